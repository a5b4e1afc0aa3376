#include "flow_colors.h"

#include <QCoreApplication>

namespace redirect::gui {

FlowKind flowKindOf(engine::EndReason reason, bool direct)
{
    using engine::EndReason;
    switch (reason) {
    case EndReason::Open: return direct ? FlowKind::Direct : FlowKind::Open;
    case EndReason::Closed: case EndReason::Idle: return direct ? FlowKind::DirectEnded : FlowKind::Ended;
    case EndReason::Reset: return FlowKind::Reset;
    case EndReason::Refused: case EndReason::Timeout: case EndReason::Unreachable: return FlowKind::Refused;
    case EndReason::HopCap: case EndReason::NoRecords: case EndReason::Error: return FlowKind::Failed;
    }
    return FlowKind::Failed;
}

FlowLook flowLookOf(FlowKind kind)
{
    // Pale backgrounds for what went wrong (readable with the default dark text); text colour
    // for what is merely different: ended flows grey, direct ones blue.
    switch (kind) {
    case FlowKind::Open: return {};
    case FlowKind::Ended: return {QColor(0x6b, 0x6b, 0x6b), {}};
    case FlowKind::Reset: return {{}, QColor(0xfd, 0xe3, 0xc8)};
    case FlowKind::Refused: return {{}, QColor(0xf8, 0xd0, 0xd0)};
    case FlowKind::Failed: return {{}, QColor(0xe6, 0xd5, 0xf5)};
    case FlowKind::Direct: return {QColor(0x1f, 0x5f, 0xa8), {}};
    case FlowKind::DirectEnded: return {QColor(0x7a, 0x9c, 0xc6), {}};
    }
    return {};
}

std::vector<LegendEntry> flowLegend()
{
    auto tr = [](const char* text) { return QCoreApplication::translate("FlowLegend", text); };
    return {
        {FlowKind::Open, tr("open"), tr("Redirected, still open")},
        {FlowKind::Ended, tr("closed"), tr("Redirected, ended normally")},
        {FlowKind::Reset, tr("reset"), tr("Ended by a reset (either side)")},
        {FlowKind::Refused, tr("refused"), tr("A connect was refused, timed out or could not reach its destination")},
        {FlowKind::Failed, tr("failed"), tr("Hop cap reached, records missing, or an engine error")},
        {FlowKind::Direct, tr("direct"), tr("Not redirected: a bypass rule, no rule, or a redirector passed over")},
        {FlowKind::DirectEnded, tr("direct, closed"), tr("Not redirected, ended normally")},
    };
}

}  // namespace redirect::gui
