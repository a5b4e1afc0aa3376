// The flow table under load, timed (moved out of tst_flow_model_load, which keeps
// the functional checks): 100,000 flows in a shown, sorted QTableView, then new
// flows at a steady rate, each ending one tick later, through EngineBridge's
// 10 Hz timer. Prints the gaps between ticks against a baseline of idle ticks on
// the same table measured in the same run, and the model's bytes per flow.
// A benchmark, never a pass/fail test.
//   bench_flow_model [SECONDS_PER_PHASE] [NEW_FLOWS_PER_SECOND]     (defaults 5, 2000)
#include <QApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QTableView>
#include <QTimer>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine_bridge.h"
#include "flow_filter_proxy.h"
#include "flow_model.h"
#include "flow_table_load.h"

using redirect::engine::Flow;
using redirect::gui::EngineBridge;
using redirect::gui::FlowFilterProxy;
using redirect::gui::FlowModel;
using redirect::test::fillTable;
using redirect::test::showTable;
using redirect::test::syntheticFlow;

namespace {

constexpr int kRows = 100000;
constexpr int kIntervalMs = 100;

// New flows due by now at perSecond (counted from start()), and the previous call's flows ended.
class RateSource {
public:
    RateSource(uint64_t firstId, int perSecond, bool mixDirect)
        : next_(firstId), perSecond_(perSecond), mixDirect_(mixDirect)
    {
    }
    void start() { clock_.start(); }

    size_t operator()(std::vector<Flow>& out)
    {
        for (uint64_t id : open_)
            out.push_back(syntheticFlow(id, true, mixDirect_));
        open_.clear();
        const uint64_t due = static_cast<uint64_t>(clock_.elapsed()) * static_cast<uint64_t>(perSecond_) / 1000;
        for (; produced_ < due; ++produced_) {
            out.push_back(syntheticFlow(next_, false, mixDirect_));
            open_.push_back(next_++);
        }
        return out.size();
    }
    uint64_t produced() const { return produced_; }

private:
    uint64_t next_;
    int perSecond_;
    bool mixDirect_;
    uint64_t produced_ = 0;
    QElapsedTimer clock_;
    std::vector<uint64_t> open_;
};

struct Phase {
    std::vector<qint64> gaps;  // ms between tick starts
    uint64_t flows = 0;
    qint64 ms = 0;

    qint64 percentile(double p) const
    {
        if (gaps.empty())
            return 0;
        std::vector<qint64> sorted = gaps;
        std::sort(sorted.begin(), sorted.end());
        return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())))];
    }
};

Phase runPhase(FlowModel& model, uint64_t firstId, int perSecond, int seconds, bool mixDirect)
{
    Phase phase;
    RateSource source(firstId, perSecond, mixDirect);
    EngineBridge bridge([&source](std::vector<Flow>& out) { return source(out); }, &model);
    QObject::connect(&bridge, &EngineBridge::ticked, [&phase](qint64 gapMs) {
        if (gapMs > 0)
            phase.gaps.push_back(gapMs);
    });
    QElapsedTimer run;
    QEventLoop loop;
    QTimer::singleShot(seconds * 1000, &loop, &QEventLoop::quit);
    run.start();
    source.start();
    bridge.start(kIntervalMs);
    loop.exec();
    bridge.stop();
    phase.ms = run.elapsed();
    phase.flows = source.produced();
    return phase;
}

// mixDirect: a third of the flows went direct, and the view shows them ("Show direct connections").
void runCase(const char* name, int sortColumn, const QString& filter, int seconds, int perSecond, bool mixDirect = false)
{
    FlowModel model;
    FlowFilterProxy proxy;
    proxy.setSourceModel(&model);
    proxy.setFilterText(filter);
    proxy.setShowDirect(mixDirect);
    fillTable(model, kRows, mixDirect);
    QTableView view;
    showTable(view, &proxy, sortColumn);
    QCoreApplication::processEvents();

    // Baseline: the same table and view, ticking with nothing new.
    Phase idle = runPhase(model, kRows + 1, 0, seconds, mixDirect);
    Phase load = runPhase(model, kRows + 1, perSecond, seconds, mixDirect);
    const size_t bytesPerFlow = model.memoryBytes() / static_cast<size_t>(std::max(model.rowCount(), 1));
    const double ratio = idle.percentile(0.99) > 0
                             ? static_cast<double>(load.percentile(0.99)) / static_cast<double>(idle.percentile(0.99))
                             : 0.0;
    std::printf("%-32s %5lld/%5lld/%5lld %6lld/%5lld/%5lld %9.2f %10lld %9.0f %8zu\n", name,
                static_cast<long long>(idle.percentile(0.5)), static_cast<long long>(idle.percentile(0.99)),
                static_cast<long long>(idle.percentile(1.0)), static_cast<long long>(load.percentile(0.5)),
                static_cast<long long>(load.percentile(0.99)), static_cast<long long>(load.percentile(1.0)), ratio,
                static_cast<long long>(std::max<qint64>(0, load.percentile(1.0) - kIntervalMs)),
                static_cast<double>(load.flows) * 1000.0 / static_cast<double>(std::max<qint64>(load.ms, 1)),
                bytesPerFlow);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv)
{
    int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
    int perSecond = argc > 2 ? std::atoi(argv[2]) : 2000;
    if (seconds <= 0 || perSecond <= 0) {
        std::fprintf(stderr, "usage: bench_flow_model [SECONDS_PER_PHASE] [NEW_FLOWS_PER_SECOND]\n");
        return 2;
    }
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
        qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    std::printf("\nflow table: %d rows, %d new flows/s for %d s after %d s idle, ticks every %d ms\n", kRows,
                perSecond, seconds, seconds, kIntervalMs);
    std::printf("%-32s %17s %18s %9s %10s %9s %8s\n", "case", "idle p50/p99/max", "load p50/p99/max", "p99/idle",
                "stall ms", "flows/s", "B/flow");
    runCase("sorted by time", FlowModel::Time, QString(), seconds, perSecond);
    runCase("sorted by bytes down, filtered", FlowModel::BytesDown, QStringLiteral("comm:curl -reason:reset"), seconds,
            perSecond);
    runCase("direct shown, sorted by time", FlowModel::Time, QString(), seconds, perSecond, true);
    return 0;
}
