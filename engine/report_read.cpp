#include "report_read.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <sys/stat.h>

#include "format.h"
#include "rules_fields.h"

namespace redirect::engine {

namespace {

using Json = nlohmann::json;

// A field that is not what the schema says: where it is, and what is wrong with it.
struct BadField : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] void bad(const std::string& where, const std::string& what)
{
    throw BadField(where + ": " + what);
}

const Json& member(const Json& object, const char* key, const std::string& where)
{
    auto it = object.find(key);
    if (it == object.end())
        bad(where, std::string("missing \"") + key + "\"");
    return *it;
}

std::string field(const std::string& where, const char* key) { return where.empty() ? key : where + "." + key; }

std::string str(const Json& object, const char* key, const std::string& where)
{
    const Json& v = member(object, key, where);
    if (!v.is_string())
        bad(field(where, key), std::string("expected a string, found ") + v.type_name());
    return v.get<std::string>();
}

template <typename T> T number(const Json& object, const char* key, const std::string& where)
{
    const Json& v = member(object, key, where);
    // Unsigned fields are written as unsigned; a negative or fractional value is not ours.
    if (!v.is_number_unsigned())
        bad(field(where, key), std::string("expected a whole number, found ") + (v.is_number() ? v.dump() : v.type_name()));
    const uint64_t n = v.get<uint64_t>();
    if (n > std::numeric_limits<T>::max())
        bad(field(where, key), v.dump() + " is too large");
    return T(n);
}

bool flag(const Json& object, const char* key, const std::string& where)
{
    const Json& v = member(object, key, where);
    if (!v.is_boolean())
        bad(field(where, key), std::string("expected true or false, found ") + v.type_name());
    return v.get<bool>();
}

// A time or null (0: unknown, or still open).
int64_t timeOf(const Json& object, const char* key, const std::string& where)
{
    const Json& v = member(object, key, where);
    if (v.is_null())
        return 0;
    if (!v.is_string())
        bad(field(where, key), std::string("expected an RFC 3339 time or null, found ") + v.type_name());
    int64_t ns = 0;
    if (std::string why = fields::parseTime(v.get_ref<const std::string&>(), ns); !why.empty())
        bad(field(where, key), why);  // the rules' reader of times: one RFC 3339 for the engine
    return ns;
}

std::vector<uint8_t> hexOf(const Json& object, const char* key, const std::string& where)
{
    const std::string hex = str(object, key, where);
    auto digit = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
    std::vector<uint8_t> bytes;
    bytes.reserve(hex.size() / 2);
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        const int hi = digit(hex[i]), lo = digit(hex[i + 1]);
        if (hi < 0 || lo < 0)
            break;
        bytes.push_back(uint8_t(hi * 16 + lo));
    }
    if (bytes.size() * 2 != hex.size())
        bad(field(where, key), "expected lower-case hex digits in pairs");
    return bytes;
}

EndReason reasonOf(const Json& object, const std::string& where)
{
    const std::string name = str(object, "reason", where);
    if (auto r = endReasonByName(name))
        return *r;
    bad(field(where, "reason"), "unknown end reason \"" + name + "\"");
}

// Arrays and objects where the schema has them.
void expect(const Json& j, bool object, const std::string& where)
{
    if (object ? !j.is_object() : !j.is_array())
        bad(where, std::string(object ? "expected an object, found " : "expected an array, found ") + j.type_name());
}

Hop hopOf(const Json& j, const std::string& where)
{
    expect(j, true, where);
    Hop hop;
    hop.redirectorId = number<uint32_t>(j, "redirector_id", where);
    hop.redirector = str(j, "redirector", where);
    if (j.contains("rule"))  // reports before each hop had its rule
        hop.rule = str(j, "rule", where);
    hop.external = flag(j, "external", where);
    const std::string state = str(j, "state", where);
    auto s = redirectStateByName(state);
    if (!s)
        bad(field(where, "state"), "unknown redirect state \"" + state + "\"");
    hop.state = *s;
    hop.recordsSize = number<uint32_t>(j, "records_size", where);
    hop.contextSize = number<uint32_t>(j, "context_size", where);
    hop.records = hexOf(j, "records_hex", where);
    hop.context = hexOf(j, "context_hex", where);
    const Json& ms = member(j, "connect_ms", where);
    if (!ms.is_null() && !ms.is_number())
        bad(field(where, "connect_ms"), std::string("expected a number or null, found ") + ms.type_name());
    hop.connectMs = ms.is_null() ? -1 : ms.get<double>();
    hop.bytesUp = number<uint64_t>(j, "bytes_up", where);
    hop.bytesDown = number<uint64_t>(j, "bytes_down", where);
    if (j.contains("datagrams_up"))  // reports before UDP
        hop.datagramsUp = number<uint64_t>(j, "datagrams_up", where);
    if (j.contains("datagrams_down"))
        hop.datagramsDown = number<uint64_t>(j, "datagrams_down", where);
    hop.startNs = timeOf(j, "start", where);
    hop.endNs = timeOf(j, "end", where);
    hop.reason = reasonOf(j, where);
    hop.recordsMissing = flag(j, "records_missing", where);
    if (j.contains("in_process"))  // reports before in-process chains
        hop.inProcess = flag(j, "in_process", where);
    return hop;
}

Flow flowOf(const Json& j, const std::string& where)
{
    expect(j, true, where);
    Flow flow;
    flow.flowId = number<uint64_t>(j, "flow_id", where);
    flow.startNs = timeOf(j, "start", where);
    flow.endNs = timeOf(j, "end", where);
    flow.pid = number<uint32_t>(j, "pid", where);
    flow.uid = number<uint32_t>(j, "uid", where);
    flow.user = str(j, "user", where);
    flow.comm = str(j, "comm", where);
    flow.cgroupId = number<uint64_t>(j, "cgroup_id", where);
    flow.destination = str(j, "destination", where);
    flow.host = str(j, "host", where);
    flow.rule = str(j, "rule", where);
    flow.verdict = str(j, "verdict", where);
    const Json& hops = member(j, "hops", where);
    expect(hops, false, field(where, "hops"));
    for (size_t i = 0; i < hops.size(); ++i)
        flow.hops.push_back(hopOf(hops[i], field(where, "hops") + "[" + std::to_string(i) + "]"));
    flow.bytesUp = number<uint64_t>(j, "bytes_up", where);
    flow.bytesDown = number<uint64_t>(j, "bytes_down", where);
    if (j.contains("protocol")) {  // reports before UDP: every flow was TCP
        const std::string protocol = str(j, "protocol", where);
        const std::optional<uint8_t> parsed = protocolByName(protocol);
        if (!parsed)
            bad(field(where, "protocol"), "unknown protocol \"" + protocol + "\" (expected \"tcp\" or \"udp\")");
        flow.protocol = *parsed;
    }
    if (j.contains("datagrams_up"))
        flow.datagramsUp = number<uint64_t>(j, "datagrams_up", where);
    if (j.contains("datagrams_down"))
        flow.datagramsDown = number<uint64_t>(j, "datagrams_down", where);
    flow.reason = reasonOf(j, where);
    if (j.contains("node"))
        flow.node = str(j, "node", where);
    return flow;
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string parseMessage(const Json::parse_error& e)
{
    std::string what = e.what();
    if (auto close = what.find("] "); what.rfind("[json.exception", 0) == 0 && close != std::string::npos)
        what.erase(0, close + 2);
    return what;
}

}  // namespace

ReportReadResult readJsonReport(std::string_view text)
{
    ReportReadResult result;
    Json j;
    try {
        j = Json::parse(text.begin(), text.end());
    } catch (const Json::parse_error& e) {
        if (e.byte >= text.size())
            result.error = "truncated: the JSON text ends after " + std::to_string(text.size()) +
                           " bytes, before the report is complete (" + parseMessage(e) + ")";
        else
            result.error = "not JSON: " + parseMessage(e);
        return result;
    }
    try {
        if (!j.is_object())
            bad("the report", std::string("expected a JSON object, found ") + j.type_name());
        auto schema = j.find("schema");
        if (schema == j.end() || !schema->is_string())
            bad("schema", "missing: not a Redirect Console report");
        const std::string name = schema->get<std::string>();
        const std::string family = std::string(kReportSchema.substr(0, kReportSchema.find('/') + 1));
        if (name.rfind(family, 0) != 0)
            bad("schema", "\"" + name + "\" is not a Redirect Console report");
        if (name != kReportSchema)
            bad("schema", "version " + name.substr(family.size()) + " of the report format; this console reads version " +
                              std::string(kReportSchema.substr(family.size())));
        ReportContents& r = result.report;
        r.meta.generator = str(j, "generator", "");
        r.meta.hostname = str(j, "host", "");
        r.meta.generatedNs = timeOf(j, "generated", "");
        const Json& scope = member(j, "scope", "");
        expect(scope, true, "scope");
        r.scope.filter = str(scope, "filter", "scope");
        r.scope.fromNs = timeOf(scope, "from", "scope");
        r.scope.toNs = timeOf(scope, "to", "scope");
        r.meta.scopeText = str(scope, "text", "scope");
        const Json& flows = member(j, "flows", "");
        expect(flows, false, "flows");
        r.flows.reserve(flows.size());
        for (size_t i = 0; i < flows.size(); ++i)
            r.flows.push_back(flowOf(flows[i], "flows[" + std::to_string(i) + "]"));
        const Json& totals = member(j, "totals", "");
        if (!totals.is_object() || number<uint64_t>(totals, "flows", "totals") != r.flows.size())
            bad("totals.flows", "does not match the " + std::to_string(r.flows.size()) + " flows in the file");
    } catch (const BadField& e) {
        result.report = {};
        result.error = e.what();
    }
    return result;
}

ReportReadResult readReportFile(const std::string& path)
{
    ReportReadResult result;
    std::ifstream in(path, std::ios::binary);
    struct stat st {};
    if (!in || ::stat(path.c_str(), &st) != 0) {
        result.error = path + ": " + std::strerror(errno);
        return result;
    }
    if (!S_ISREG(st.st_mode)) {
        result.error = path + ": not a regular file";
        return result;
    }
    if (size_t(st.st_size) > kMaxReportBytes) {
        result.error = path + ": " + std::to_string(st.st_size) + " bytes; reports up to " +
                       std::to_string(kMaxReportBytes >> 20) + " MiB can be opened";
        return result;
    }
    std::string text(size_t(st.st_size), '\0');
    if (!in.read(text.data(), std::streamsize(text.size()))) {
        result.error = path + ": " + std::strerror(errno);
        return result;
    }
    result = readJsonReport(text);
    if (!result.ok())
        result.error = path + ": " + result.error;
    return result;
}

}  // namespace redirect::engine
