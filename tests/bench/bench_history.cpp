// The service's flow history (app/service/flow_history.h) under load, in process with the real
// SQLite file: ended flows added at 5,000/s in the drain loop's 100 ms batches, with the CPU the
// writer thread and the adding thread use for it (thread CPU clocks) as a share of one core; then a
// query of one hour out of 1,000,000 flows that ended over a day, as QueryHistory runs it (rows
// read and parsed into the API's messages). Prints numbers next to their targets; no pass/fail.
//
//   bench_history SECONDS DIRECTORY
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <time.h>

#include "engine.h"
#include "flow_history.h"
#include "redirect_console.pb.h"

using namespace redirect;

namespace {

int64_t threadCpuNs()
{
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// A flow as the engine ends it: two redirectors, records and context of a two-hop chain.
engine::Flow flowAt(uint64_t id, int64_t endNs)
{
    engine::Flow f;
    f.flowId = id;
    f.startNs = endNs - 40'000'000;
    f.endNs = endNs;
    f.pid = uint32_t(1000 + id % 300);
    f.uid = 1000;
    f.comm = "curl";
    f.user = "alice";
    f.destination = "10.1." + std::to_string(id % 250) + "." + std::to_string(id % 200) + ":443";
    f.host = "host" + std::to_string(id % 5000) + ".example";
    f.rule = "web";
    f.verdict = "redirect";
    f.bytesUp = 800;
    f.bytesDown = 40000;
    f.reason = engine::EndReason::Closed;
    for (uint32_t r = 1; r <= 2; ++r) {
        engine::Hop h;
        h.redirectorId = r;
        h.redirector = r == 1 ? "Web inspector" : "DLP agent";
        h.records.assign(24 + 8 * r, uint8_t(id));
        h.context.assign(96, uint8_t(r));
        h.recordsSize = uint32_t(h.records.size());
        h.contextSize = 96;
        h.startNs = f.startNs;
        h.endNs = endNs;
        h.reason = engine::EndReason::Closed;
        f.hops.push_back(h);
    }
    f.hops.push_back(engine::Hop{});
    return f;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: bench_history SECONDS DIRECTORY\n");
        return 2;
    }
    const double seconds = std::atof(argv[1]);
    const std::string dir = argv[2];
    ::mkdir(dir.c_str(), 0700);
    std::string error;

    // 1. 5,000 flows/s for SECONDS, in 100 ms batches of 500.
    const std::string insertPath = dir + "/insert.sqlite";
    auto history = service::FlowHistory::open({insertPath, 7, 4096}, &error);
    if (!history) {
        std::fprintf(stderr, "bench_history: %s\n", error.c_str());
        return 1;
    }
    const int batches = int(seconds * 10);
    int64_t addCpu = 0;
    uint64_t id = 1;
    const int64_t writerBefore = history->writerCpuNs();
    const auto start = std::chrono::steady_clock::now();
    std::vector<engine::Flow> batch;
    for (int b = 0; b < batches; ++b) {
        batch.clear();
        const int64_t now = engine::wallNowNs();
        for (int i = 0; i < 500; ++i, ++id)
            batch.push_back(flowAt(id, now));
        const int64_t c0 = threadCpuNs();
        history->add(batch);
        addCpu += threadCpuNs() - c0;
        std::this_thread::sleep_until(start + std::chrono::milliseconds(100 * (b + 1)));
    }
    history->flush();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double writerPct = double(history->writerCpuNs() - writerBefore) / 1e9 / wall * 100;
    const double addPct = double(addCpu) / 1e9 / wall * 100;
    struct stat st {};
    ::stat(insertPath.c_str(), &st);
    std::printf("history insert: %.0f flows/s for %.1f s: writer thread %.2f %% of one core, adding (drain loop) "
                "%.2f %%, together %.2f %% (target < 10 %%); %llu written, %llu dropped, %.0f bytes/flow on disk\n",
                double(history->written()) / wall, wall, writerPct, addPct, writerPct + addPct,
                (unsigned long long)history->written(), (unsigned long long)history->dropped(),
                history->written() ? double(st.st_size) / double(history->written()) : 0.0);
    history.reset();

    // 2. 1,000,000 flows that ended over the last 24 hours, oldest first; one hour in the middle.
    const std::string queryPath = dir + "/query.sqlite";
    history = service::FlowHistory::open({queryPath, 7, 4096}, &error);
    if (!history) {
        std::fprintf(stderr, "bench_history: %s\n", error.c_str());
        return 1;
    }
    constexpr uint64_t kFlows = 1'000'000;
    const int64_t now = engine::wallNowNs();
    const int64_t day = 86400LL * 1'000'000'000, step = day / int64_t(kFlows);
    const auto fillStart = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < kFlows;) {
        batch.clear();
        for (int k = 0; k < 10000 && i < kFlows; ++k, ++i)
            batch.push_back(flowAt(i + 1, now - day + int64_t(i) * step));
        history->add(batch);
        if (i % 100000 == 0)
            history->flush();  // below the writer's queue bound
    }
    history->flush();
    const double fill = std::chrono::duration<double>(std::chrono::steady_clock::now() - fillStart).count();
    ::stat(queryPath.c_str(), &st);
    const int64_t from = now - day / 2, to = from + day / 24;
    size_t got = 0, batches2 = 0;
    redirect::v1::Flow message;
    const auto q0 = std::chrono::steady_clock::now();
    const bool ok = history->query(
        {from, to, 0, {}, 2000},
        [&](std::vector<std::string>&& flows, const std::string&) {
            for (const std::string& f : flows)
                message.ParseFromString(f);
            got += flows.size();
            ++batches2;
            return true;
        },
        &error);
    const double q = std::chrono::duration<double>(std::chrono::steady_clock::now() - q0).count();
    if (!ok) {
        std::fprintf(stderr, "bench_history: query: %s\n", error.c_str());
        return 1;
    }
    std::printf("history query: one hour (%zu flows in %zu batches) out of %llu in %.3f s (target < 1 s); "
                "filled at %.0f flows/s, %.0f MiB on disk\n",
                got, batches2, (unsigned long long)history->written(), q, double(kFlows) / fill,
                double(st.st_size) / (1 << 20));
    history.reset();
    for (const char* name : {"/insert.sqlite", "/query.sqlite"})
        for (const char* suffix : {"", "-wal", "-shm"})
            ::unlink((dir + name + suffix).c_str());
    ::rmdir(dir.c_str());
    return 0;
}
