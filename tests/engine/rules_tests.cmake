# The rules file: its JSON reader, parsing and validation, and compilation to the callout's table.
redirect_test(tst_json SOURCES tst_json.cpp LIBS Redirect::engine)
redirect_test(tst_rules SOURCES tst_rules.cpp rules_fixtures.h LIBS Redirect::engine)
redirect_test(tst_rules_compile SOURCES tst_rules_compile.cpp rules_fixtures.h LIBS Redirect::engine)
