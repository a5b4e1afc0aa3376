// The charts panel offscreen: fed samples and flow updates as the main window feeds them, checked
// on its axes and series: units that follow the magnitude, integer ticks on counts, an axis that
// shrinks once a spike leaves the chosen window, the window combo, and connect times per redirector.
#include <cmath>

#include <QCategoryAxis>
#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QLineSeries>
#include <QValueAxis>
#include <QtTest>

#include "charts_panel.h"

using redirect::gui::ChartsPanel;

namespace {

QChart* chart(ChartsPanel& panel, const char* name)
{
    auto* view = panel.findChild<QChartView*>(QString::fromLatin1(name));
    return view ? view->chart() : nullptr;
}

QAbstractAxis* yAxis(ChartsPanel& panel, const char* name)
{
    QChart* c = chart(panel, name);
    return c ? c->axes(Qt::Vertical).value(0) : nullptr;
}

QValueAxis* xAxis(ChartsPanel& panel, const char* name)
{
    QChart* c = chart(panel, name);
    return c ? qobject_cast<QValueAxis*>(c->axes(Qt::Horizontal).value(0)) : nullptr;
}

// Samples t = first..last, one a second, with `flows` new flows and one redirector moving `rate`
// bytes a second (its cumulative total continues from *total).
void feed(ChartsPanel& panel, int first, int last, quint64 flows, quint64 rate, quint64* total)
{
    for (int t = first; t <= last; ++t) {
        *total += rate;
        panel.addSample(t, flows, flows, {{QStringLiteral("inspector"), *total}});
    }
}

// Every tick of a dynamic-tick value axis is an integer: an integral step from an anchor at 0,
// and a top that is a multiple of the step.
QString integerTicksProblem(QAbstractAxis* axis)
{
    auto* y = qobject_cast<QValueAxis*>(axis);
    if (!y)
        return QStringLiteral("not a value axis");
    if (y->tickType() != QValueAxis::TicksDynamic)
        return QStringLiteral("fixed tick count %1 over 0..%2").arg(y->tickCount()).arg(y->max());
    const double step = y->tickInterval();
    if (step < 1 || step != std::floor(step) || y->tickAnchor() != 0 || y->min() != 0 ||
        std::fmod(y->max(), step) != 0)
        return QStringLiteral("step %1 anchor %2 range %3..%4").arg(step).arg(y->tickAnchor()).arg(y->min()).arg(y->max());
    return {};
}

redirect::engine::Hop hop(uint32_t id, const char* name, double connectMs, bool external = false)
{
    redirect::engine::Hop h;
    h.redirectorId = id;
    h.redirector = name;
    h.connectMs = connectMs;
    h.external = external;
    return h;
}

redirect::engine::Flow flow(uint64_t id, std::vector<redirect::engine::Hop> hops, bool ended = false)
{
    redirect::engine::Flow f;
    f.flowId = id;
    f.startNs = 1;
    f.endNs = ended ? 2 : 0;
    f.hops = std::move(hops);
    return f;
}

QStringList seriesNames(QChart* c)
{
    QStringList names;
    for (QAbstractSeries* s : c->series())
        names << s->name();
    names.sort();
    return names;
}

}  // namespace

class TstChartsPanel : public QObject {
    Q_OBJECT

private slots:
    void rateUnitFollowsMagnitude_data()
    {
        QTest::addColumn<quint64>("rate");
        QTest::addColumn<QString>("unit");
        QTest::newRow("500 B/s") << quint64(500) << "B/s";
        QTest::newRow("300 KiB/s") << quint64(300 * 1024) << "KiB/s";
        QTest::newRow("5 MiB/s") << quint64(5 * 1024 * 1024) << "MiB/s";
        QTest::newRow("3 GiB/s") << quint64(3ULL * 1024 * 1024 * 1024) << "GiB/s";
    }

    void rateUnitFollowsMagnitude()
    {
        QFETCH(quint64, rate);
        QFETCH(QString, unit);
        ChartsPanel panel;
        quint64 total = 0;
        feed(panel, 1, 5, 1, rate, &total);
        auto* y = qobject_cast<QCategoryAxis*>(yAxis(panel, "bytesChart"));
        QVERIFY(y);
        QCOMPARE(y->titleText(), unit);
        // The labels are plain numbers in that unit, and the top label is above the rate.
        const QStringList labels = y->categoriesLabels();
        QVERIFY2(labels.size() >= 2 && labels.size() <= 7, qPrintable(labels.join(' ')));
        for (const QString& label : labels) {
            bool ok = false;
            label.toDouble(&ok);
            QVERIFY2(ok, qPrintable(label));
        }
        QVERIFY2(y->max() >= double(rate), qPrintable(QStringLiteral("top %1 for %2 B/s").arg(y->max()).arg(rate)));
        // The top label says the axis' top in that unit.
        const double unitBytes = std::pow(1024.0, QStringList{"B/s", "KiB/s", "MiB/s", "GiB/s"}.indexOf(unit));
        QCOMPARE(labels.last().toDouble() * unitBytes, y->max());
    }

    void countAxesHaveIntegerTicks_data()
    {
        QTest::addColumn<quint64>("flows");
        for (quint64 n : {0, 1, 2, 3, 7, 13, 999, 2000})
            QTest::newRow(qPrintable(QString::number(n))) << n;
    }

    void countAxesHaveIntegerTicks()
    {
        QFETCH(quint64, flows);
        ChartsPanel panel;
        quint64 total = 0;
        feed(panel, 1, 3, flows, 0, &total);
        for (const char* name : {"newFlowsChart", "activeFlowsChart"}) {
            QAbstractAxis* y = yAxis(panel, name);
            QVERIFY2(y, name);
            const QString problem = integerTicksProblem(y);
            QVERIFY2(problem.isEmpty(), qPrintable(QString::fromLatin1(name) + ": " + problem));
            QVERIFY(static_cast<QValueAxis*>(y)->max() >= double(flows));
            // About four ticks, not one per flow.
            QVERIFY(static_cast<QValueAxis*>(y)->max() / static_cast<QValueAxis*>(y)->tickInterval() <= 10);
        }
    }

    void axisShrinksAfterSpikeLeavesWindow()
    {
        ChartsPanel panel;
        auto* combo = panel.findChild<QComboBox*>(QStringLiteral("chartsWindow"));
        QVERIFY(combo);
        combo->setCurrentIndex(combo->findData(60.0));
        QCOMPARE(panel.windowSeconds(), 60.0);
        quint64 total = 0;
        feed(panel, 1, 1, 2, 100, &total);  // the first sample is the bytes' baseline
        feed(panel, 2, 2, 1000, 50ULL * 1024 * 1024, &total);  // the spike
        feed(panel, 3, 30, 2, 100, &total);
        auto* flowsY = qobject_cast<QValueAxis*>(yAxis(panel, "newFlowsChart"));
        auto* bytesY = qobject_cast<QCategoryAxis*>(yAxis(panel, "bytesChart"));
        QVERIFY(flowsY && bytesY);
        QVERIFY2(flowsY->max() >= 1000, "the spike is in the window but above the axis");
        QCOMPARE(bytesY->titleText(), QString("MiB/s"));
        feed(panel, 31, 70, 2, 100, &total);  // the spike is 68 s old: out of a 1-minute window
        QVERIFY2(flowsY->max() < 10, qPrintable(QStringLiteral("flows axis still up to %1").arg(flowsY->max())));
        QCOMPARE(bytesY->titleText(), QString("B/s"));
        QVERIFY2(bytesY->max() < 1024, qPrintable(QStringLiteral("bytes axis still up to %1").arg(bytesY->max())));
        // Back to 5 minutes: the spike is in the window again, and so on the axis.
        combo->setCurrentIndex(combo->findData(300.0));
        QVERIFY(flowsY->max() >= 1000);
    }

    void windowComboChangesRange()
    {
        ChartsPanel panel;
        auto* combo = panel.findChild<QComboBox*>(QStringLiteral("chartsWindow"));
        QVERIFY(combo);
        QCOMPARE(combo->count(), 3);
        quint64 total = 0;
        feed(panel, 1, 1000, 1, 10, &total);
        const QList<std::pair<double, double>> choices = {{60, 940}, {300, 700}, {900, 100}};
        for (const auto& [seconds, from] : choices) {
            const int index = combo->findData(seconds);
            QVERIFY2(index >= 0, qPrintable(QString::number(seconds)));
            combo->setCurrentIndex(index);
            QCOMPARE(panel.windowSeconds(), seconds);
            for (const char* name : {"newFlowsChart", "activeFlowsChart", "bytesChart", "latencyChart"}) {
                QValueAxis* x = xAxis(panel, name);
                QVERIFY2(x, name);
                QCOMPARE(x->min(), from);
                QCOMPARE(x->max(), 1000.0);
            }
        }
        // The points of the largest window are kept: the first one shown in 15 minutes is there.
        auto* series = qobject_cast<QLineSeries*>(chart(panel, "newFlowsChart")->series().value(0));
        QVERIFY(series);
        QVERIFY2(series->at(0).x() <= 100, qPrintable(QString::number(series->at(0).x())));
    }

    void latencyLinePerRedirector()
    {
        ChartsPanel panel;
        QChart* c = chart(panel, "latencyChart");
        QVERIFY(c);
        // Flow 1: A then B then the direct leg; flow 2 through an external proxy whose connect time
        // nobody measured, then A; flow 3's A connects later (unknown in its first update).
        const auto flow1 = flow(1, {hop(1, "A", 2.0), hop(2, "B", 4.0), hop(0, "", 1.0)});
        panel.addFlows({flow1, flow(2, {hop(9, "X", -1, true), hop(1, "A", 6.0)}), flow(3, {hop(1, "A", -1)})});
        panel.addFlows({flow1});  // the same hops again, as a bytes update: not noted twice
        panel.addSample(1, 3, 3, {});
        QCOMPARE(seriesNames(c), (QStringList{"A", "B"}));
        auto series = [&](const QString& name) {
            for (QAbstractSeries* s : c->series())
                if (s->name() == name)
                    return qobject_cast<QLineSeries*>(s);
            return static_cast<QLineSeries*>(nullptr);
        };
        QCOMPARE(series("A")->count(), 1);
        QCOMPARE(series("A")->at(0), QPointF(1, 4.0));  // (2 + 6) / 2
        QCOMPARE(series("B")->at(0), QPointF(1, 4.0));
        // A second with no connect measured: no point (not 0).
        panel.addFlows({flow(1, flow1.hops, true)});
        panel.addSample(2, 0, 2, {});
        QCOMPARE(series("A")->count(), 1);
        QCOMPARE(series("B")->count(), 1);
        // Flow 3's connect time arrives: one point for A at 10 ms; the axis holds it.
        panel.addFlows({flow(3, {hop(1, "A", 10.0)})});
        panel.addFlows({flow(3, {hop(1, "A", 10.0)}, true)});
        panel.addSample(3, 0, 1, {});
        QCOMPARE(series("A")->count(), 2);
        QCOMPARE(series("A")->at(1), QPointF(3, 10.0));
        QCOMPARE(series("B")->count(), 1);
        auto* y = qobject_cast<QValueAxis*>(c->axes(Qt::Vertical).value(0));
        QVERIFY(y);
        QCOMPARE(y->titleText(), QString("ms"));
        QVERIFY(y->max() >= 10);
        QCOMPARE(seriesNames(c), (QStringList{"A", "B"}));
    }
};

QTEST_MAIN(TstChartsPanel)
#include "tst_charts_panel.moc"
