// A small strict JSON (RFC 8259) reader that remembers where every value and
// every object key stands in the source, so that each rules error can name a
// line and a column. No Debian JSON library keeps per-value positions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace redirect::engine::json {

/// 1-based line and column; the column counts UTF-8 code points (a tab is one).
struct Position {
    int line = 0;
    int column = 0;
    bool operator==(const Position&) const = default;

    std::string str() const;  ///< "3:17"
};

/// An error with its place in the source. Line 0 means "not in the text" (for example, a file error).
struct Error {
    int line = 0;
    int column = 0;
    std::string message;

    /// "3:17: message", or just the message when line is 0.
    std::string str() const;
};

enum class Type : uint8_t { Null, Bool, Number, String, Array, Object };

/// "null", "a boolean", "a number", "a string", "an array", "an object": for messages.
const char* typeName(Type type);

struct Member;

/// One parsed value. Only the fields of its type are meaningful.
struct Value {
    Type type = Type::Null;
    Position position;              ///< where the value starts
    bool boolean = false;
    double number = 0;
    bool integral = false;          ///< number is an integer exactly held in `integer`
    int64_t integer = 0;
    std::string string;             ///< UTF-8, escapes resolved
    std::vector<Value> elements;    ///< Array
    std::vector<Member> members;    ///< Object, in source order; keys are unique

    /// The member named key, or nullptr.
    const Member* find(std::string_view key) const;
};

struct Member {
    std::string key;
    Position keyPosition;           ///< of the key's opening quote
    Value value;
};

/// What parse() gives: the value, or an error (ok() tells which).
struct ParseResult {
    Value value;
    Error error;
    bool ok() const { return error.message.empty(); }
};

/// Largest input parse() accepts, and deepest nesting of arrays and objects.
constexpr size_t kMaxInputBytes = 4u << 20;
constexpr int kMaxDepth = 64;

/**
 * Parses one JSON text strictly: no comments, no trailing commas, no
 * duplicate keys (the error is at the second one), no leading zeros, no NaN,
 * nothing after the value, valid UTF-8 only, nesting at most kMaxDepth.
 * A leading UTF-8 byte order mark is skipped (RFC 8259 section 8.1 allows it).
 */
ParseResult parse(std::string_view text);

}  // namespace redirect::engine::json
