#include "json.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_map>

namespace redirect::engine::json {

std::string Position::str() const { return std::to_string(line) + ":" + std::to_string(column); }

std::string Error::str() const
{
    if (line == 0)
        return message;
    return Position{line, column}.str() + ": " + message;
}

const char* typeName(Type type)
{
    switch (type) {
    case Type::Null: return "null";
    case Type::Bool: return "a boolean";
    case Type::Number: return "a number";
    case Type::String: return "a string";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
    }
    return "?";
}

const Member* Value::find(std::string_view key) const
{
    for (const Member& m : members)
        if (m.key == key)
            return &m;
    return nullptr;
}

namespace {

// Thrown inside the parser, caught by parse(): keeps every step a plain return.
struct Failure {
    Position at;
    std::string message;
};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

int hexDigit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void appendUtf8(std::string& out, uint32_t cp)
{
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

// How a character is named in a message: 'x' when printable ASCII, else its code.
std::string describe(unsigned char c)
{
    char buf[16];
    if (c >= 0x20 && c < 0x7F)
        std::snprintf(buf, sizeof buf, "'%c'", c);
    else if (c < 0x80)
        std::snprintf(buf, sizeof buf, "U+%04X", c);
    else
        std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
    return buf;
}

class Parser {
public:
    explicit Parser(std::string_view text) : text_(text) {}

    Value document()
    {
        if (text_.substr(0, 3) == "\xEF\xBB\xBF")
            pos_ = 3;
        skipSpace();
        if (atEnd())
            fail(here(), "empty input: expected a JSON value");
        Value v = value(0);
        skipSpace();
        if (!atEnd())
            fail(here(), "unexpected " + describe(peek()) + " after the JSON value");
        return v;
    }

private:
    bool atEnd() const { return pos_ >= text_.size(); }
    unsigned char peek() const { return static_cast<unsigned char>(text_[pos_]); }
    Position here() const { return {line_, column_}; }

    [[noreturn]] void fail(Position at, std::string message) { throw Failure{at, std::move(message)}; }

    // Moves past one byte; a continuation byte of a UTF-8 sequence does not start a column.
    void advance()
    {
        unsigned char c = peek();
        ++pos_;
        if (c == '\n') {
            ++line_;
            column_ = 1;
        } else if ((c & 0xC0) != 0x80) {
            ++column_;
        }
    }

    void skipSpace()
    {
        while (!atEnd()) {
            unsigned char c = peek();
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                advance();
            } else if (c == '/' && pos_ + 1 < text_.size() && (text_[pos_ + 1] == '/' || text_[pos_ + 1] == '*')) {
                fail(here(), "comments are not allowed in JSON");
            } else {
                return;
            }
        }
    }

    // The next structural character must be one of `allowed`; otherwise `expected` names what was wanted.
    char expectOneOf(const char* allowed, const std::string& expected)
    {
        skipSpace();
        if (atEnd())
            fail(here(), "unexpected end of input: " + expected);
        for (const char* a = allowed; *a; ++a) {
            if (peek() == static_cast<unsigned char>(*a)) {
                advance();
                return *a;
            }
        }
        fail(here(), expected + ", got " + describe(peek()));
    }

    Value value(int depth)
    {
        skipSpace();
        if (atEnd())
            fail(here(), "unexpected end of input: expected a value");
        Value v;
        v.position = here();
        unsigned char c = peek();
        if (c == '{' || c == '[') {
            if (depth >= kMaxDepth)
                fail(here(), "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
            if (c == '{')
                object(v, depth + 1);
            else
                array(v, depth + 1);
        } else if (c == '"') {
            v.type = Type::String;
            v.string = string();
        } else if (c == '-' || isDigit(char(c))) {
            number(v);
        } else if (literal("true")) {
            v.type = Type::Bool;
            v.boolean = true;
        } else if (literal("false")) {
            v.type = Type::Bool;
        } else if (literal("null")) {
            v.type = Type::Null;
        } else {
            std::string hint = (c == 'N' || c == 'I') ? " (NaN and Infinity are not JSON)"
                             : (c == '\'') ? " (strings take double quotes)" : "";
            fail(here(), "unexpected " + describe(c) + ": expected a value" + hint);
        }
        return v;
    }

    bool literal(std::string_view word)
    {
        if (text_.substr(pos_, word.size()) != word)
            return false;
        size_t end = pos_ + word.size();
        if (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_'))
            return false;
        for (size_t i = 0; i < word.size(); ++i)
            advance();
        return true;
    }

    // Moves past an opening bracket; true when `close` follows at once (and is consumed too).
    bool openEmpty(char close)
    {
        advance();
        skipSpace();
        if (atEnd() || peek() != static_cast<unsigned char>(close))
            return false;
        advance();
        return true;
    }

    void object(Value& v, int depth)
    {
        v.type = Type::Object;
        if (openEmpty('}'))
            return;
        std::unordered_map<std::string, size_t> index;  // key -> member: a linear search per key is quadratic
        for (;;) {
            skipSpace();
            if (atEnd())
                fail(here(), "unexpected end of input: expected a string key");
            if (peek() != '"') {
                bool trailing = !v.members.empty() && peek() == '}';
                fail(here(), trailing ? "trailing comma before '}': expected a string key after ','"
                                      : "expected a string key, got " + describe(peek()));
            }
            Member m;
            m.keyPosition = here();
            m.key = string();
            auto [first, added] = index.try_emplace(m.key, v.members.size());
            if (!added)
                fail(m.keyPosition, "duplicate key \"" + m.key + "\" (first at "
                                        + v.members[first->second].keyPosition.str() + ")");
            expectOneOf(":", "expected ':' after object key");
            m.value = value(depth);
            v.members.push_back(std::move(m));
            if (expectOneOf(",}", "expected ',' or '}' after object member") == '}')
                return;
        }
    }

    void array(Value& v, int depth)
    {
        v.type = Type::Array;
        if (openEmpty(']'))
            return;
        for (;;) {
            skipSpace();
            if (!v.elements.empty() && !atEnd() && peek() == ']')
                fail(here(), "trailing comma before ']': expected a value after ','");
            v.elements.push_back(value(depth));
            if (expectOneOf(",]", "expected ',' or ']' after array element") == ']')
                return;
        }
    }

    void digits(const char* after)
    {
        if (atEnd() || !isDigit(char(peek())))
            fail(here(), std::string("expected a digit ") + after);
        while (!atEnd() && isDigit(char(peek())))
            advance();
    }

    void number(Value& v)
    {
        v.type = Type::Number;
        size_t start = pos_;
        bool plainInteger = true;
        if (peek() == '-')
            advance();
        if (!atEnd() && peek() == '0' && pos_ + 1 < text_.size() && isDigit(text_[pos_ + 1]))
            fail(v.position, "leading zeros are not allowed in numbers");
        digits(start == pos_ ? "in number" : "after '-'");
        if (!atEnd() && peek() == '.') {
            plainInteger = false;
            advance();
            digits("after '.' in number");
        }
        bool negativeExponent = false;
        if (!atEnd() && (peek() == 'e' || peek() == 'E')) {
            plainInteger = false;
            advance();
            if (!atEnd() && (peek() == '+' || peek() == '-')) {
                negativeExponent = peek() == '-';
                advance();
            }
            digits("in exponent");
        }
        const char* first = text_.data() + start;
        const char* last = text_.data() + pos_;
        auto [p, ec] = std::from_chars(first, last, v.number);
        if (ec == std::errc::result_out_of_range) {
            if (!negativeExponent)
                fail(v.position, "number out of range");
            v.number = 0;  // underflow: rounds to zero
        }
        if (plainInteger && std::from_chars(first, last, v.integer).ec == std::errc()) {
            v.integral = true;
        } else if (std::trunc(v.number) == v.number && std::fabs(v.number) <= 9007199254740992.0) {
            v.integral = true;
            v.integer = static_cast<int64_t>(v.number);
        }
    }

    uint32_t hex4()
    {
        uint32_t cp = 0;
        for (int i = 0; i < 4; ++i) {
            int d = atEnd() ? -1 : hexDigit(char(peek()));
            if (d < 0)
                fail(here(), "expected 4 hex digits after \\u");
            cp = cp * 16 + uint32_t(d);
            advance();
        }
        return cp;
    }

    // After the backslash: one escape, appended to out.
    void escape(std::string& out, Position at)
    {
        if (atEnd())
            return;  // the caller reports the unterminated string
        char c = char(peek());
        static constexpr std::string_view simple = "\"\\/bfnrt";
        static constexpr std::string_view meaning = "\"\\/\b\f\n\r\t";
        if (size_t i = simple.find(c); i != std::string_view::npos) {
            advance();
            out += meaning[i];
            return;
        }
        if (c != 'u')
            fail(at, "invalid escape \\" + std::string(1, c) + " in string (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
        advance();
        uint32_t cp = hex4();
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            fail(at, "lone low surrogate \\u" + hex(cp) + " in string");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u")
                fail(at, "high surrogate \\u" + hex(cp) + " not followed by a low surrogate");
            Position lowAt = here();
            advance();
            advance();
            uint32_t low = hex4();
            if (low < 0xDC00 || low > 0xDFFF)
                fail(lowAt, "expected a low surrogate after \\u" + hex(cp) + ", got \\u" + hex(low));
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        appendUtf8(out, cp);
    }

    static std::string hex(uint32_t cp)
    {
        char buf[8];
        std::snprintf(buf, sizeof buf, "%04X", cp);
        return buf;
    }

    // One UTF-8 sequence starting at a byte >= 0x80, copied to out if valid.
    void utf8(std::string& out)
    {
        Position at = here();
        unsigned char lead = peek();
        int extra;
        uint32_t cp;
        if (lead >= 0xC2 && lead <= 0xDF) {
            extra = 1;
            cp = lead & 0x1F;
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            extra = 2;
            cp = lead & 0x0F;
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            extra = 3;
            cp = lead & 0x07;
        } else {
            fail(at, "invalid UTF-8 (" + describe(lead) + ")");
        }
        size_t start = pos_;
        for (int i = 1; i <= extra; ++i) {
            if (start + i >= text_.size() || (static_cast<unsigned char>(text_[start + i]) & 0xC0) != 0x80)
                fail(at, "invalid UTF-8 (truncated sequence)");
            cp = (cp << 6) | (static_cast<unsigned char>(text_[start + i]) & 0x3F);
        }
        static constexpr uint32_t minimum[] = {0, 0x80, 0x800, 0x10000};
        if (cp < minimum[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            fail(at, "invalid UTF-8 (overlong, surrogate or out of range)");
        out.append(text_.substr(start, size_t(extra) + 1));
        for (int i = 0; i <= extra; ++i)
            advance();
    }

    std::string string()
    {
        Position open = here();
        advance();  // '"'
        std::string out;
        for (;;) {
            if (atEnd())
                fail(open, "unterminated string (missing closing '\"')");
            unsigned char c = peek();
            if (c == '"') {
                advance();
                return out;
            }
            if (c == '\n' || c == '\r')
                fail(open, "unterminated string (line break before the closing '\"')");
            if (c < 0x20)
                fail(here(), "control character " + describe(c) + " in string must be escaped");
            if (c == '\\') {
                Position at = here();
                advance();
                escape(out, at);
            } else if (c >= 0x80) {
                utf8(out);
            } else {
                out += char(c);
                advance();
            }
        }
    }

    std::string_view text_;
    size_t pos_ = 0;
    int line_ = 1;
    int column_ = 1;
};

}  // namespace

ParseResult parse(std::string_view text)
{
    ParseResult result;
    if (text.size() > kMaxInputBytes) {
        result.error = {1, 1, "input is larger than " + std::to_string(kMaxInputBytes >> 20) + " MiB"};
        return result;
    }
    try {
        result.value = Parser(text).document();
    } catch (const Failure& f) {
        result.error = {f.at.line, f.at.column, f.message};
    }
    return result;
}

}  // namespace redirect::engine::json
