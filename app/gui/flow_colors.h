// How a flow row looks: one place that maps a flow's end reason and verdict to the table's
// colours and to the legend under it, so the two never disagree.
#pragma once

#include <QColor>
#include <QString>

#include <vector>

#include "flow.h"

namespace redirect::gui {

/// The kinds of row a person tells apart at a glance.
enum class FlowKind { Open, Ended, Reset, Refused, Failed, Direct, DirectEnded };

FlowKind flowKindOf(engine::EndReason reason, bool direct);

struct FlowLook {
    QColor foreground;  ///< invalid: the view's default
    QColor background;  ///< invalid: the view's default
};

FlowLook flowLookOf(FlowKind kind);

struct LegendEntry {
    FlowKind kind;
    QString label;
    QString meaning;  ///< tooltip: which end reasons and verdicts it covers
};

/// Every kind with its label, in the legend's order.
std::vector<LegendEntry> flowLegend();

}  // namespace redirect::gui
