#include "flow.h"

#include "redirect/sio.h"

namespace redirect::engine {

const char* endReasonName(EndReason reason)
{
    switch (reason) {
    case EndReason::Open: return "open";
    case EndReason::Closed: return "closed";
    case EndReason::Reset: return "reset";
    case EndReason::Refused: return "refused";
    case EndReason::Timeout: return "timeout";
    case EndReason::Unreachable: return "unreachable";
    case EndReason::HopCap: return "hop_cap";
    case EndReason::NoRecords: return "no_records";
    case EndReason::Idle: return "idle";
    case EndReason::Error: return "error";
    }
    return "?";
}

std::optional<EndReason> endReasonByName(std::string_view name)
{
    for (int r = 0; r <= int(kLastEndReason); ++r)
        if (name == endReasonName(EndReason(r)))
            return EndReason(r);
    return std::nullopt;
}

const char* redirectStateName(uint8_t state) { return redirect_state_name(state); }

std::optional<uint8_t> redirectStateByName(std::string_view name)
{
    for (int s = 0; s < 8; ++s)
        if (name != "?" && name == redirectStateName(uint8_t(s)))
            return uint8_t(s);
    return std::nullopt;
}

std::string Flow::chainText() const
{
    std::string text = "app";
    for (const Hop& hop : hops) {
        if (hop.redirectorId == 0)
            continue;
        text += " -> ";
        text += hop.redirector.empty() ? std::to_string(hop.redirectorId) : hop.redirector;
    }
    text += " -> ";
    text += destination;
    return text;
}

std::string Flow::routeText() const
{
    if (hops.empty()) {
        if (verdict == "direct")
            return "direct, no rule";
        if (verdict == "bypass")
            return "direct, bypass rule";
        if (verdict == "stalled")
            return "direct, its redirector stalled";
        if (verdict == "unverified")
            return "direct, no verified listener";
        if (verdict == "local")
            return "to a redirector's port";
        return verdict == "redirect" ? "redirecting" : verdict;
    }
    size_t count = 0;
    std::string missing;
    for (const Hop& hop : hops) {
        if (hop.redirectorId == 0)
            continue;
        ++count;
        if (hop.recordsMissing) {
            missing += missing.empty() ? ", records missing at " : ", ";
            missing += hop.redirector.empty() ? std::to_string(hop.redirectorId) : hop.redirector;
        }
    }
    std::string text = std::to_string(count) + (count == 1 ? " hop" : " hops");
    if (reason == EndReason::HopCap)
        text += ", hop cap";
    return text + missing;
}

}  // namespace redirect::engine
