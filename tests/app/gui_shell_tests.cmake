# tests of the console's start-up (service offer, demo service: app/gui/shell.cmake) and of what
# `cmake --install` ships; all three match `ctest -R tst_privilege`
find_package(Qt6 REQUIRED COMPONENTS Widgets)
add_executable(privilege_probe privilege_probe.cpp)
target_link_libraries(privilege_probe PRIVATE redirect_gui_shell spdlog::spdlog)
redirect_warnings(privilege_probe)

redirect_test(tst_privilege SOURCES tst_privilege.cpp privilege_test_support.h
  LIBS redirect_gui_shell Qt6::Widgets spdlog::spdlog)

redirect_test(tst_privilege_demo SOURCES tst_privilege_demo.cpp privilege_test_support.h
  LIBS redirect_gui_shell Qt6::Widgets)
add_dependencies(tst_privilege_demo privilege_probe redirect-console)
target_include_directories(tst_privilege_demo PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
target_compile_definitions(tst_privilege_demo PRIVATE PRIVILEGE_PROBE="$<TARGET_FILE:privilege_probe>"
  REDIRECT_CONSOLE_BINARY="$<TARGET_FILE:redirect-console>")

redirect_test(tst_privilege_install SOURCES tst_privilege_install.cpp LIBS redirect_gui_shell Qt6::Widgets)
add_dependencies(tst_privilege_install redirect-console redirect-consoled)
target_compile_definitions(tst_privilege_install PRIVATE
  REDIRECT_CONSOLE_BINARY="$<TARGET_FILE:redirect-console>"
  REDIRECT_CMAKE="${CMAKE_COMMAND}"
  REDIRECT_BUILD_DIR="${CMAKE_BINARY_DIR}"
  REDIRECT_RESOURCES_DIR="${CMAKE_SOURCE_DIR}/resources"
  REDIRECT_POLICY_FILE="$<TARGET_PROPERTY:redirect_gui_shell,REDIRECT_POLICY_FILE>"
  REDIRECT_INSTALLED_SERVICE="$<TARGET_PROPERTY:redirect_gui_shell,REDIRECT_INSTALLED_SERVICE>")
