// libFuzzer harness: the console's flow filter (engine::FlowFilter in report.h), parsed and
// matched against a few fixed flows. The input is two filter texts A and B split at the first NUL.
// Tokens are ANDed and a text that parses ends outside any quote, so when A parses, "A B" must
// parse exactly when B does and must match exactly the flows that both match.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flow.h"
#include "report.h"

using namespace redirect::engine;

namespace {

[[noreturn]] void fail(const char* what, std::string_view a, std::string_view b)
{
    std::fprintf(stderr, "fuzz_flow_filter: %s\nA: [%.*s]\nB: [%.*s]\n", what, int(a.size()), a.data(),
                 int(b.size()), b.data());
    std::abort();
}

Hop hop(uint32_t id, std::string name)
{
    Hop h;
    h.redirectorId = id;
    h.redirector = std::move(name);
    return h;
}

std::vector<Flow> fixedFlows()
{
    std::vector<Flow> flows(3);
    Flow& web = flows[0];  // a two-redirector chain, still open
    web.flowId = 0x1234abcdULL;
    web.pid = 4242;
    web.uid = 1000;
    web.comm = "curl";
    web.user = "alice";
    web.destination = "93.184.216.34:443";
    web.host = "example.com";
    web.rule = "web";
    web.verdict = "redirect";
    web.hops = {hop(0x9e3779b9, "Web inspector"), hop(7, "DLP agent"), hop(0, "")};
    Flow& refused = flows[1];  // IPv6, unnamed redirector, ended
    refused.flowId = 1;
    refused.pid = 1;
    refused.comm = "python3";
    refused.destination = "[::1]:8081";
    refused.rule = "no-ssh";
    refused.verdict = "chain_end";
    refused.reason = EndReason::Refused;
    refused.hops = {hop(15002, "")};
    flows[2].reason = EndReason::HopCap;  // everything empty or zero
    return flows;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    static const std::vector<Flow> flows = fixedFlows();
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const size_t nul = input.find('\0');
    const std::string_view a = input.substr(0, nul);
    const std::string_view b = nul == std::string_view::npos ? std::string_view{} : input.substr(nul + 1);

    std::string errorA, errorB, errorBoth;
    const std::optional<FlowFilter> fa = FlowFilter::parse(a, &errorA);
    const std::optional<FlowFilter> fb = FlowFilter::parse(b, &errorB);
    const std::optional<FlowFilter> both = FlowFilter::parse(std::string(a) + " " + std::string(b), &errorBoth);
    if ((!fa && errorA.empty()) || (!fb && errorB.empty()) || (!both && errorBoth.empty()))
        fail("rejected without a message", a, b);
    // A text that does not parse may end in an open quote that B closes: nothing to compare then.
    if (!fa)
        return 0;
    if (both.has_value() != fb.has_value())
        fail("\"A B\" parses differently from A and B", a, b);
    if (!both)
        return 0;
    if (both->empty() != (fa->empty() && fb->empty()))
        fail("\"A B\" empty differs", a, b);
    for (const Flow& flow : flows)
        if (both->matches(flow) != (fa->matches(flow) && fb->matches(flow)))
            fail("\"A B\" matches differently from A and B", a, b);
    return 0;
}
