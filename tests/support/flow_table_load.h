// The flow table under load, as its load test (tests/app/tst_flow_model_load)
// and its benchmark (tests/bench/bench_flow_model) both build it: made-up
// flows as an engine publishes them, a full table, and the view on it.
#pragma once

#include <QAbstractItemModel>
#include <QHeaderView>
#include <QTableView>

#include <cstdint>
#include <string>
#include <vector>

#include "flow.h"
#include "flow_model.h"

namespace redirect::test {

/// Flow `id` through one redirector; with `ended`, closed (every 17th reset) with byte counts.
/// With `mixDirect`, every third flow went direct instead (no rule, no hops), as a machine's
/// connections are when the console shows them all.
inline engine::Flow syntheticFlow(uint64_t id, bool ended, bool mixDirect = false)
{
    engine::Flow f;
    f.flowId = id;
    f.startNs = 1'700'000'000'000'000'000 + static_cast<int64_t>(id) * 500'000;
    f.pid = 2000 + static_cast<uint32_t>(id % 5000);
    f.uid = 1000 + static_cast<uint32_t>(id % 3);
    f.comm = id % 4 ? "curl" : "firefox";
    f.user = "user" + std::to_string(id % 3);
    f.destination = "10." + std::to_string(id % 200) + ".0.1:443";
    f.host = "host" + std::to_string(id % 1000) + ".example.com";
    f.rule = "web";
    f.verdict = "redirect";
    engine::Hop proxy;
    proxy.redirectorId = 11;
    proxy.redirector = id % 2 ? "dlp" : "audit";
    proxy.state = 1;
    proxy.recordsSize = 96;
    proxy.contextSize = 24;
    proxy.records.assign(96, 0x5a);
    proxy.context.assign(24, 0xa5);
    f.hops = {proxy, engine::Hop{}};
    if (mixDirect && id % 3 == 0) {
        f.rule.clear();
        f.verdict = "direct";
        f.hops.clear();
    }
    if (ended) {
        f.endNs = f.startNs + static_cast<int64_t>(id % 997) * 1'000'000;
        f.reason = id % 17 ? engine::EndReason::Closed : engine::EndReason::Reset;
        f.bytesUp = id * 13 % 100000;
        f.bytesDown = id * 101 % 10000000;
    }
    return f;
}

/// Flows 1..rows, all ended, in one batch.
inline void fillTable(gui::FlowModel& model, int rows, bool mixDirect = false)
{
    std::vector<engine::Flow> fill;
    for (int i = 1; i <= rows; ++i)
        fill.push_back(syntheticFlow(static_cast<uint64_t>(i), true, mixDirect));
    model.applyBatch(std::move(fill));
}

/// The console's table on `model` (the sort/filter proxy): sorted by `column`, shown.
inline void showTable(QTableView& view, QAbstractItemModel* model, int column)
{
    view.setModel(model);
    view.setSortingEnabled(true);
    view.sortByColumn(column, Qt::AscendingOrder);
    view.verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    view.resize(1200, 800);
    view.show();
}

}  // namespace redirect::test
