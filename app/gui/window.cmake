# The main window and the GUI entry point, on top of the models and the shell.
add_library(redirect_gui_window STATIC
  chain_view.cpp
  chain_view.h
  charts_panel.cpp
  charts_panel.h
  coexistence_view.cpp
  coexistence_view.h
  export_dialog.cpp
  export_dialog.h
  flow_details.cpp
  flow_details.h
  flow_legend.cpp
  flow_legend.h
  gui_main.cpp
  gui_main.h
  main_window.cpp
  main_window.h
  main_window_actions.cpp
  filter_completer.cpp
  filter_completer.h
  connect_dialog.cpp
  connect_dialog.h
  nodes_view.cpp
  nodes_view.h
  preview_dialog.cpp
  preview_dialog.h
  rule_form.cpp
  rule_form.h
  report_view.cpp
  report_view.h
  rules_panel.cpp
  rules_panel.h)
target_include_directories(redirect_gui_window PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(redirect_gui_window PUBLIC redirect_gui_models redirect_gui_shell redirect_app
  Qt6::Widgets Qt6::Charts Qt6::Network spdlog::spdlog)
# Help > Documentation: the README as installed, else the one of this source tree.
target_compile_definitions(redirect_gui_window PRIVATE
  REDIRECT_DOC_INSTALLED="${CMAKE_INSTALL_FULL_DOCDIR}/README.md"
  REDIRECT_DOC_SOURCE="${PROJECT_SOURCE_DIR}/README.md")
redirect_warnings(redirect_gui_window)
