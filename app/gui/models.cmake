# Models and the engine bridge of the console (no widgets): tested headless.
add_library(redirect_gui_models STATIC
  engine_bridge.cpp
  engine_bridge.h
  flow_colors.cpp
  flow_colors.h
  flow_filter_proxy.cpp
  flow_filter_proxy.h
  flow_model.cpp
  flow_model.h
  flow_row.cpp
  flow_row.h
  log_sink.cpp
  log_sink.h
  rules_model.cpp
  rules_model.h
  table_csv.cpp
  table_csv.h)
target_include_directories(redirect_gui_models PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(redirect_gui_models PUBLIC Qt6::Core Qt6::Gui Redirect::engine redirect_node_client spdlog::spdlog)
redirect_warnings(redirect_gui_models)
