redirect_test(tst_rules SOURCES tst_rules.cpp LIBS Redirect::engine)
