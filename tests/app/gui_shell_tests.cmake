# tests of the administrator gate and the installed resources (app/gui/shell.cmake)
find_package(Qt6 REQUIRED COMPONENTS Widgets)
add_executable(privilege_probe privilege_probe.cpp)
target_link_libraries(privilege_probe PRIVATE redirect_gui_shell)
redirect_warnings(privilege_probe)

redirect_test(tst_privilege SOURCES tst_privilege.cpp LIBS redirect_gui_shell Qt6::Widgets)
add_dependencies(tst_privilege privilege_probe redirect-console)
target_include_directories(tst_privilege PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
target_compile_definitions(tst_privilege PRIVATE
  PRIVILEGE_PROBE="$<TARGET_FILE:privilege_probe>"
  REDIRECT_CONSOLE_BINARY="$<TARGET_FILE:redirect-console>"
  REDIRECT_RESOURCES_DIR="${CMAKE_SOURCE_DIR}/resources"
  REDIRECT_POLICY_FILE="$<TARGET_PROPERTY:redirect_gui_shell,REDIRECT_POLICY_FILE>"
  REDIRECT_INSTALLED_EXECUTABLE="$<TARGET_PROPERTY:redirect_gui_shell,REDIRECT_INSTALLED_EXECUTABLE>")
