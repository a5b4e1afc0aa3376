// A spdlog sink for the log pane: formatted lines wait in a bounded ring until
// the GUI timer takes them, so logging never posts a Qt event per line.
#pragma once

#include <spdlog/sinks/base_sink.h>

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace redirect::gui {

class LogSink : public spdlog::sinks::base_sink<std::mutex> {
public:
    /// Keeps at most `capacity` lines between two take() calls; older ones are dropped and counted.
    explicit LogSink(size_t capacity = 2000);

    /// Lines logged since the last take, oldest first; *dropped (if given) gets how many were lost.
    std::vector<std::string> take(uint64_t* dropped = nullptr);
    size_t capacity() const { return capacity_; }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override {}

private:
    const size_t capacity_;
    std::deque<std::string> lines_;   // guarded by base_sink's mutex_
    uint64_t dropped_ = 0;
};

}  // namespace redirect::gui
