# The service's Prometheus metrics: served text (no root), and a real Prometheus scraping real flows.
set(CMAKE_AUTOMOC ON)
add_library(redirect_test_metrics_scrape STATIC metrics_scrape.cpp metrics_scrape.h)
target_include_directories(redirect_test_metrics_scrape PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
redirect_warnings(redirect_test_metrics_scrape)
redirect_test(tst_metrics SOURCES tst_metrics.cpp LIBS redirect_metrics redirect_test_metrics_scrape)
redirect_test(tst_metrics_prometheus SOURCES tst_metrics_prometheus.cpp
  LIBS redirect_metrics redirect_test_metrics_scrape redirect_test_service LABELS kernel)
add_dependencies(tst_metrics_prometheus redirect-consoled)
