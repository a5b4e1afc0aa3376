#include "log_sink.h"

namespace redirect::gui {

LogSink::LogSink(size_t capacity) : capacity_(capacity > 0 ? capacity : 1) {}

void LogSink::sink_it_(const spdlog::details::log_msg& msg)
{
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    size_t size = formatted.size();
    while (size > 0 && (formatted[size - 1] == '\n' || formatted[size - 1] == '\r'))
        --size;
    if (lines_.size() == capacity_) {
        lines_.pop_front();
        ++dropped_;
    }
    lines_.emplace_back(formatted.data(), size);
}

std::vector<std::string> LogSink::take(uint64_t* dropped)
{
    std::deque<std::string> lines;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        lines.swap(lines_);
        if (dropped)
            *dropped = dropped_;
        dropped_ = 0;
    }
    return {std::make_move_iterator(lines.begin()), std::make_move_iterator(lines.end())};
}

}  // namespace redirect::gui
