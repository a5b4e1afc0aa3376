// libFuzzer harness: the rules parser (engine::parseRules, with the JSON reader under it).
// Beyond "no crash, no sanitizer report" it holds the two promises of rules.h: an error in the
// text points into the text, and a valid set written by rulesToJson() reads back equal.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rules.h"

using namespace redirect::engine;

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail)
{
    std::fprintf(stderr, "fuzz_rules: %s\n%s\n", what, detail.c_str());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const RulesResult first = parseRules(text);
    if (!first.ok()) {
        // Line 0 is reserved for file errors; the text has at most count('\n') + 1 lines.
        const auto lines = std::count(text.begin(), text.end(), '\n') + 1;
        if (first.error.line < 1 || first.error.line > lines || first.error.column < 1)
            fail("error position outside the text", first.error.str());
        return 0;
    }
    const std::string written = rulesToJson(first.rules);
    const RulesResult second = parseRules(written);
    if (!second.ok())
        fail("rulesToJson() output does not parse", second.error.str() + "\n" + written);
    if (!(second.rules == first.rules))
        fail("rulesToJson() round trip changed the rule set", written);
    return 0;
}
