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
  gui_main.cpp
  gui_main.h
  main_window.cpp
  main_window.h
  connect_dialog.cpp
  connect_dialog.h
  nodes_view.cpp
  nodes_view.h)
target_include_directories(redirect_gui_window PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(redirect_gui_window PUBLIC redirect_gui_models redirect_gui_shell redirect_app
  Qt6::Widgets Qt6::Charts Qt6::Network spdlog::spdlog)
redirect_warnings(redirect_gui_window)
