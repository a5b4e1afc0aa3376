// Shared by the report tests (tst_report, tst_report_scope): six flows with every kind of hostile
// text, generated flows in bulk, and small helpers to write and compare reports.
#pragma once

#include <cstdint>
#include <vector>

#include <QString>
#include <QTest>

#include <nlohmann/json.hpp>

#include "report.h"

// QCOMPARE cannot take json (its implicit conversions trip Qt's overloads).
#define COMPARE_JSON(actual, expected)                                                                  \
    do {                                                                                                \
        const nlohmann::json actual_ = (actual), expected_ = (expected);                                \
        QVERIFY2(actual_ == expected_, qPrintable(QString::fromStdString(                               \
                                           "got " + actual_.dump() + ", expected " + expected_.dump()))); \
    } while (false)

namespace report_test {

using redirect::engine::Flow;
using nlohmann::json;

inline constexpr int64_t kT0 = 1'700'000'000'123'456'789;  // 2023-11-14T22:13:20.123Z
inline constexpr int64_t kSecond = 1'000'000'000;
inline constexpr uint64_t kBigId = 18'446'744'073'709'551'600ull;  // above 2^53: exact in every format?
inline constexpr char kScriptHost[] = "<script>alert(1)</script>";
inline constexpr char kBadUtf8Comm[] = "bad\xff\xfe|\xe6\x97";        // two bad bytes, a truncated sequence
inline constexpr char kBadUtf8Clean[] = "bad\uFFFD\uFFFD|\uFFFD";
inline constexpr uint64_t kTiB = 1ull << 40;

/// Six flows with every kind of hostile text, open and closed, zero to three hops; flow 5 is UDP.
std::vector<Flow> sampleFlows();
redirect::engine::ReportMeta sampleMeta();
/// `count` plain flows, one in ten open, with two hops each.
std::vector<Flow> manyFlows(size_t count);
/// Milliseconds since the epoch as Qt writes ISO 8601 ("" for 0): an independent RFC 3339.
QString isoMs(int64_t ns);
bool writeFile(const QString& path, redirect::engine::ReportFormat format, const std::vector<Flow>& flows,
               const redirect::engine::ReportScope& scope = {},
               const redirect::engine::ReportMeta& meta = sampleMeta());

}  // namespace report_test
