# What the console does before its window (attach to the local service, offer to start it, or start
# its private demo service, through pkexec unless administrator) and what `cmake --install` puts on
# the desktop: polkit action, .desktop entry, icon, default rules, systemd unit.
include(GNUInstallDirs)

add_library(redirect_gui_shell STATIC
  demo_service.cpp
  demo_service.h
  privilege.cpp
  privilege.h
  service_offer.cpp
  service_offer.h
  ${CMAKE_SOURCE_DIR}/resources/resources.qrc)
target_include_directories(redirect_gui_shell PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(redirect_gui_shell PUBLIC Qt6::Widgets redirect_app PRIVATE spdlog::spdlog)
redirect_warnings(redirect_gui_shell)

# The action pkexec checks for the demo's service names the installed redirect-consoled (exec.path).
set(REDIRECT_POLICY_FILE ${CMAKE_CURRENT_BINARY_DIR}/org.redirectconsole.console.policy)
configure_file(${CMAKE_SOURCE_DIR}/resources/org.redirectconsole.console.policy ${REDIRECT_POLICY_FILE} @ONLY)
set_target_properties(redirect_gui_shell PROPERTIES
  REDIRECT_POLICY_FILE ${REDIRECT_POLICY_FILE}
  REDIRECT_INSTALLED_SERVICE ${CMAKE_INSTALL_FULL_BINDIR}/redirect-consoled)

# polkitd reads /usr/share/polkit-1/actions only: with the default prefix /usr/local, either
# configure with -DCMAKE_INSTALL_PREFIX=/usr or set this to /usr/share/polkit-1/actions.
set(REDIRECT_POLKIT_ACTIONS_DIR ${CMAKE_INSTALL_DATADIR}/polkit-1/actions CACHE STRING
  "Where cmake --install puts the polkit action (polkitd reads /usr/share/polkit-1/actions)")
install(FILES ${REDIRECT_POLICY_FILE} DESTINATION ${REDIRECT_POLKIT_ACTIONS_DIR})
install(FILES ${CMAKE_SOURCE_DIR}/resources/redirect-console.desktop DESTINATION ${CMAKE_INSTALL_DATADIR}/applications)
install(FILES ${CMAKE_SOURCE_DIR}/resources/icons/redirect-console.svg
  DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/scalable/apps)
install(FILES ${CMAKE_SOURCE_DIR}/resources/default-rules.json DESTINATION ${CMAKE_INSTALL_DATADIR}/redirect-console)
install(FILES ${CMAKE_SOURCE_DIR}/resources/redirect-console.service DESTINATION lib/systemd/system)
