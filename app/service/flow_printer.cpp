#include "flow_printer.h"

#include <cerrno>
#include <cstring>
#include <ctime>

#include <netinet/in.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "callout_abi.h"
#include "format.h"

namespace redirect::app {

namespace {

// Column widths in characters; with one space between them a line is 119 wide, so that it stays on
// one row of a 120-column terminal.
constexpr size_t kTime = 12, kProcess = 20, kChain = 32, kDestination = 22, kReason = 11, kBytes = 8;

// Open flows remembered for their byte counts; past this (updates lost in queue drops) the map starts
// over rather than grow: one status line's bytes/s is off, nothing else.
constexpr size_t kOpenMemory = 1 << 18;

// Characters (code points) of UTF-8 text: what a terminal gives a column each for the names we see.
size_t width(const std::string& text)
{
    size_t n = 0;
    for (unsigned char c : text)
        n += (c & 0xC0) != 0x80;
    return n;
}

// `text` cut to `columns` characters, its last one an ellipsis when cut (never inside a UTF-8
// sequence), padded with spaces on the right (left) when `right` is false (true).
std::string fit(const std::string& text, size_t columns, bool right = false)
{
    std::string out;
    if (width(text) <= columns) {
        out = text;
    } else {
        size_t kept = 0, i = 0;
        for (; i < text.size(); ++i) {
            if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80 && kept++ == columns - 1)
                break;
        }
        out = text.substr(0, i) + "\u2026";
    }
    const std::string pad(columns - width(out), ' ');
    return right ? pad + out : out + pad;
}

// "curl[4242]": the name is cut, never the pid.
std::string processText(const engine::Flow& f)
{
    const std::string pid = "[" + std::to_string(f.pid) + "]";
    const size_t room = kProcess > pid.size() ? kProcess - pid.size() : 1;
    std::string comm = f.comm.empty() ? std::string("?") : f.comm;
    if (width(comm) > room)
        comm = fit(comm, room);
    return comm + pid;
}

// "Web inspector -> DLP agent": the redirectors in chain order ("direct" when none took it). The
// destination follows in a column of its own, as "-> 127.0.0.1:8080", so that the line reads
// "A -> B -> dst" and each part stays aligned and cut on its own.
std::string chainText(const engine::Flow& f)
{
    std::string chain;
    for (const engine::Hop& hop : f.hops) {
        if (hop.redirectorId == 0)
            continue;
        if (!chain.empty())
            chain += " -> ";
        chain += hop.redirector.empty() ? std::to_string(hop.redirectorId) : hop.redirector;
    }
    return chain.empty() ? "direct" : chain;
}

std::string row(const std::string& time, const std::string& process, const std::string& chain,
                const std::string& destination, const std::string& reason, const std::string& up,
                const std::string& down)
{
    return fit(time, kTime) + ' ' + fit(process, kProcess) + ' ' + fit(chain, kChain) + ' ' +
           fit(destination, kDestination) + ' ' + fit(reason, kReason) + ' ' + fit(up, kBytes, true) + ' ' +
           fit(down, kBytes, true);
}

}  // namespace

bool EndedFlows::mark(uint64_t flowId)
{
    if (!ids_.insert(flowId).second)
        return false;
    order_.push_back(flowId);
    if (order_.size() > kMemory) {
        ids_.erase(order_.front());
        order_.pop_front();
    }
    return true;
}

std::string localClock(int64_t wallNs)
{
    const time_t seconds = static_cast<time_t>(wallNs / 1000000000);
    const int ms = static_cast<int>(wallNs / 1000000 % 1000);
    tm local{};
    ::localtime_r(&seconds, &local);
    char text[32];
    std::snprintf(text, sizeof(text), "%02d:%02d:%02d.%03d", local.tm_hour, local.tm_min, local.tm_sec, ms);
    return text;
}

FlowPrinter::FlowPrinter(int fd, double statusEverySeconds, Clock::time_point start)
    : fd_(fd), statusEvery_(statusEverySeconds), start_(start), lastStatus_(start)
{
}

std::string FlowPrinter::headerLine()
{
    return row("TIME", "PROCESS", "CHAIN", "   DESTINATION", "END", "UP", "DOWN");
}

std::string FlowPrinter::flowLine(const engine::Flow& f)
{
    // UDP says so where the destination is read ("-> udp example.org"); TCP, most lines, does not.
    const std::string to = (f.protocol == IPPROTO_UDP ? "udp " : "") + (f.host.empty() ? f.destination : f.host);
    return row(localClock(f.endNs), processText(f), chainText(f), "-> " + to,
               engine::endReasonName(f.reason), engine::formatBytes(f.bytesUp), engine::formatBytes(f.bytesDown));
}

void FlowPrinter::write(const std::vector<engine::Flow>& flows)
{
    std::string text;
    for (const engine::Flow& f : flows) {
        if (ended_.contains(f.flowId))
            continue;  // a late update of a flow printed already
        if (openBytes_.size() >= kOpenMemory)
            openBytes_.clear();
        auto [it, isNew] = openBytes_.try_emplace(f.flowId, 0);
        newFlows_ += isNew;
        const uint64_t bytes = f.bytesUp + f.bytesDown;
        if (bytes > it->second) {
            newBytes_ += bytes - it->second;
            it->second = bytes;
        }
        if (f.endNs == 0)
            continue;
        openBytes_.erase(it);
        ended_.mark(f.flowId);
        if (!headerDone_) {
            text += headerLine() + '\n';
            headerDone_ = true;
        }
        text += flowLine(f) + '\n';
    }
    put(text);
}

bool FlowPrinter::statusDue(Clock::time_point now) const
{
    return statusEvery_ > 0 && std::chrono::duration<double>(now - lastStatus_).count() >= statusEvery_;
}

void FlowPrinter::status(Clock::time_point now, const engine::EngineStats& s)
{
    const double seconds = std::chrono::duration<double>(now - lastStatus_).count();
    const uint64_t drops = s.queueDrops + s.callout[CALLOUT_STAT_EVENT_DROPS];
    const uint64_t open = s.openFlows;
    const bool changed = newFlows_ || newBytes_ || open != lastOpen_ || drops != lastDrops_;
    if (changed && seconds > 0) {
        char rate[32];
        std::snprintf(rate, sizeof(rate), "%.1f", static_cast<double>(newFlows_) / seconds);
        put(localClock(engine::wallNowNs()) + " status: " + std::to_string(open) + " open, " + rate +
             " new flows/s, " + engine::formatRate(static_cast<double>(newBytes_) / seconds) + ", " +
             std::to_string(drops) + " drops\n");
    }
    lastStatus_ = now;
    newFlows_ = newBytes_ = 0;
    lastOpen_ = open;
    lastDrops_ = drops;
}

void FlowPrinter::summary(Clock::time_point now, const engine::EngineStats& s)
{
    struct Counter {
        const char* name;
        uint64_t value;
        const char* meaning;
    };
    const Counter counters[] = {
        {"flows", s.flows, "flows in the engine's table at exit (ended and open)"},
        {"open flows", s.openFlows, "flows still open when the engine stopped"},
        {"classified", s.callout[CALLOUT_STAT_CLASSIFIED], "connects the callout looked at"},
        {"redirected", s.callout[CALLOUT_STAT_REDIRECTED], "connects the callout sent to a redirector"},
        {"hop cap", s.callout[CALLOUT_STAT_HOP_CAP],
         "connects that reached the cap of 8 redirectors and went direct (0: no loop was cut)"},
        {"records missing", s.callout[CALLOUT_STAT_RECORDS_MISSING],
         "redirector connects without redirect records, repaired by the callout (no SET)"},
        {"stalled", s.callout[CALLOUT_STAT_STALLED],
         "connects that went direct because the engine showed no life (--stall-deadline)"},
        {"unverified", s.callout[CALLOUT_STAT_UNVERIFIED],
         "connects that went direct because a redirector's endpoint had no verified listener"},
        {"callout event drops", s.callout[CALLOUT_STAT_EVENT_DROPS],
         "callout events the kernel could not queue for the engine (0 means none were lost)"},
        {"queue drops", s.queueDrops,
         "flow updates the engine's consumers did not take in time (0 means none were lost)"},
        {"evicted", s.evicted, "ended flows dropped from the table at its size cap (still in the flow log)"},
        {"udp dropped", s.udpDropped,
         "datagrams the UDP relay dropped (unknown source, flow limit, send refused)"},
    };
    // Lines stay within 120 columns: 35 for name and value, the meaning in the rest.
    char head[64];
    std::snprintf(head, sizeof(head), "Summary after %s:\n",
                  engine::formatDuration(std::chrono::duration_cast<std::chrono::nanoseconds>(now - start_).count())
                      .c_str());
    std::string text = head;
    for (const Counter& c : counters) {
        char line[256];
        std::snprintf(line, sizeof(line), "  %-20s %10llu  %s\n", c.name, static_cast<unsigned long long>(c.value),
                      c.meaning);
        text += line;
    }
    put(text);
}

// One write per batch, whole lines: the log (stderr) on the same terminal lands between lines,
// never inside one.
void FlowPrinter::put(const std::string& text)
{
    size_t done = 0;
    while (!failed_ && done < text.size()) {
        ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            failed_ = true;
            spdlog::warn("flow lines: stdout: {}; no more are printed", n < 0 ? std::strerror(errno) : "closed");
            return;
        }
        done += static_cast<size_t>(n);
    }
}

}  // namespace redirect::app
