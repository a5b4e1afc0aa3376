# Prometheus metrics of the service: Debian's prometheus-cpp, whose exposer (civetweb) serves /metrics.
find_package(prometheus-cpp CONFIG REQUIRED)
add_library(redirect_metrics STATIC metrics.cpp metrics.h)
target_include_directories(redirect_metrics PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
# civetweb directly too: its log callback is how a failed bind tells why.
target_link_libraries(redirect_metrics PUBLIC Redirect::engine
  PRIVATE prometheus-cpp::core prometheus-cpp::pull civetweb::civetweb-cpp spdlog::spdlog)
redirect_warnings(redirect_metrics)
