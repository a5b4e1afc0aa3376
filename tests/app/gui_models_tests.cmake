# tests of app/gui models and the engine bridge (no widgets except the load test's view)
redirect_test(tst_flow_model SOURCES tst_flow_model.cpp LIBS redirect_gui_models)
redirect_test(tst_engine_bridge SOURCES tst_engine_bridge.cpp LIBS redirect_gui_models)
redirect_test(tst_rules_model SOURCES tst_rules_model.cpp LIBS redirect_gui_models)
redirect_test(tst_log_sink SOURCES tst_log_sink.cpp LIBS redirect_gui_models)
redirect_test(tst_flow_model_load SOURCES tst_flow_model_load.cpp
  LIBS redirect_gui_models redirect_test_flow_load Qt6::Widgets)
