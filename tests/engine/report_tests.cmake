# Reports (engine/report.h): CSV read back by Python's csv module, JSON by nlohmann and Python's json,
# HTML rendered by headless Chromium (tst_report); filter and time-range scoping, progress and
# 100,000 flows (tst_report_scope). A missing python3 or chromium fails the test with the reason; it
# does not skip.
find_program(REPORT_TEST_PYTHON3 NAMES python3 HINTS /usr/bin)
find_program(REPORT_TEST_CHROMIUM NAMES chromium chromium-browser HINTS /usr/bin)
add_library(redirect_report_fixtures STATIC report_fixtures.cpp report_fixtures.h)
target_link_libraries(redirect_report_fixtures PUBLIC Redirect::engine nlohmann_json::nlohmann_json Qt6::Core Qt6::Test)
target_include_directories(redirect_report_fixtures PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})  # tst_report_view too
redirect_warnings(redirect_report_fixtures)
set_target_properties(redirect_report_fixtures PROPERTIES AUTOMOC OFF)

redirect_test(tst_report SOURCES tst_report.cpp report_reader.py LIBS redirect_report_fixtures)
target_compile_definitions(tst_report PRIVATE
  REPORT_READER_SCRIPT="${CMAKE_CURRENT_SOURCE_DIR}/report_reader.py"
  PYTHON3_EXECUTABLE="${REPORT_TEST_PYTHON3}"
  CHROMIUM_EXECUTABLE="${REPORT_TEST_CHROMIUM}")
redirect_test(tst_report_scope SOURCES tst_report_scope.cpp LIBS redirect_report_fixtures)

# The formatter of bytes, rates and durations and the CSV field writer (engine/format.h).
redirect_test(tst_format SOURCES tst_format.cpp LIBS Redirect::engine)

# Reports read back for the console's "Open report…" (engine/report_read.h).
redirect_test(tst_report_read SOURCES tst_report_read.cpp LIBS redirect_report_fixtures)
