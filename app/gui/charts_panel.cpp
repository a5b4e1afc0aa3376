#include "charts_panel.h"

#include <QCategoryAxis>
#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineSeries>
#include <QValueAxis>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <functional>

namespace redirect::gui {

namespace {
constexpr double kWindows[] = {60, 300, 900};  // the combo box's choices, in seconds
constexpr int kDefaultWindow = 1;
// One point a second over the largest window, and a little more: switching to a larger window
// shows what happened before, not an empty chart.
constexpr int kMaxPoints = 960;
// Flows whose connect times were noted, remembered until they end; past this (ends lost to queue
// drops) the memory starts over: a few hops may be noted twice, nothing grows without bound.
constexpr size_t kTimedMemory = 1 << 18;

void trim(QLineSeries* s)
{
    if (s->count() > kMaxPoints)
        s->removePoints(0, s->count() - kMaxPoints);
}

// The highest value shown from `from` on: the axis follows what is in the window, so it shrinks
// again once a spike has scrolled out.
double visibleMax(const QLineSeries* s, double from)
{
    double top = 0;
    for (int i = s->count() - 1; i >= 0 && s->at(i).x() >= from; --i)
        top = std::max(top, s->at(i).y());
    return top;
}

// The smallest of 1, 2 or 5 times a power of ten that is at least `wanted` (> 0).
double niceStep(double wanted)
{
    const double decade = std::pow(10.0, std::floor(std::log10(wanted)));
    for (double m : {1.0, 2.0, 5.0})
        if (m * decade >= wanted * (1 - 1e-9))
            return m * decade;
    return 10 * decade;
}

struct RateUnit {
    double bytes;
    const char* name;
};
constexpr RateUnit kRateUnits[] = {{1, "B/s"}, {1024, "KiB/s"}, {1024.0 * 1024, "MiB/s"}, {1024.0 * 1024 * 1024, "GiB/s"}};

// The largest unit the top of the axis reaches at least one of, as engine::formatRate() picks it.
const RateUnit& rateUnit(double top)
{
    const RateUnit* unit = &kRateUnits[0];
    for (const RateUnit& u : kRateUnits)
        if (top >= u.bytes)
            unit = &u;
    return *unit;
}

// About four ticks from 0 to above `top` (plus a tenth of headroom); `step` never below `minStep`.
std::pair<double, double> ticks(double top, double minStep)
{
    const double wanted = std::max(top * 1.1, minStep) / 4;
    const double step = std::max(minStep, niceStep(wanted));
    return {step, std::max(step, std::ceil(top * 1.1 / step) * step)};
}
}  // namespace

ChartsPanel::ChartsPanel(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    window_ = new QComboBox;
    window_->setObjectName(QStringLiteral("chartsWindow"));
    window_->addItem(tr("1 minute"), kWindows[0]);
    window_->addItem(tr("5 minutes"), kWindows[1]);
    window_->addItem(tr("15 minutes"), kWindows[2]);
    window_->setCurrentIndex(kDefaultWindow);
    auto* label = new QLabel(tr("Show the last"));
    label->setBuddy(window_);
    bar->addWidget(label);
    bar->addWidget(window_);
    bar->addStretch();
    layout->addLayout(bar);
    auto* grid = new QGridLayout;
    layout->addLayout(grid);

    rate_ = makePlot(tr("New flows per second"), QStringLiteral("newFlowsChart"), Scale::Count);
    active_ = makePlot(tr("Active flows"), QStringLiteral("activeFlowsChart"), Scale::Count);
    bytes_ = makePlot(tr("Bytes per second per redirector"), QStringLiteral("bytesChart"), Scale::Rate);
    latency_ = makePlot(tr("Connect time per redirector"), QStringLiteral("latencyChart"), Scale::Milliseconds);
    addSeries(rate_, tr("new flows"));
    addSeries(active_, tr("active flows"));
    rate_.chart->legend()->hide();
    active_.chart->legend()->hide();
    // Beside the plot, not above it: the plot keeps the height its axis labels need.
    for (Plot* plot : {&bytes_, &latency_})
        plot->chart->legend()->setAlignment(Qt::AlignRight);
    int i = 0;
    for (Plot* plot : {&rate_, &active_, &bytes_, &latency_}) {
        auto* view = new QChartView(plot->chart);
        view->setObjectName(plot->chart->objectName());
        view->setRenderHint(QPainter::Antialiasing);
        view->setMinimumHeight(180);
        grid->addWidget(view, i / 2, i % 2);
        ++i;
    }
    connect(window_, &QComboBox::currentIndexChanged, this, [this] { rescaleAll(); });
    rescaleAll();
}

double ChartsPanel::windowSeconds() const
{
    return window_->currentData().toDouble();
}

ChartsPanel::Plot ChartsPanel::makePlot(const QString& title, const QString& objectName, Scale scale)
{
    Plot plot;
    plot.chart = new QChart;
    plot.chart->setObjectName(objectName);
    plot.chart->setTitle(title);
    plot.chart->setMargins(QMargins(4, 4, 4, 4));
    plot.x = new QValueAxis;
    plot.x->setTitleText(tr("seconds"));
    plot.x->setLabelFormat("%d");
    // Whole seconds between ticks (a fixed tick count put labels at 2.5, printed as 2).
    plot.x->setTickType(QValueAxis::TicksDynamic);
    plot.x->setTickAnchor(0);
    if (scale == Scale::Rate) {
        // Labels in the unit the top reaches, the unit in the title: the series keep raw bytes/s.
        auto* y = new QCategoryAxis;
        y->setLabelsPosition(QCategoryAxis::AxisLabelsPositionOnValue);
        plot.y = y;
    } else {
        auto* y = new QValueAxis;
        // Ticks at multiples of a chosen step from 0: counts never get a tick between two integers.
        y->setTickType(QValueAxis::TicksDynamic);
        y->setTickAnchor(0);
        y->setLabelFormat(scale == Scale::Count ? "%.0f" : "%g");
        y->setTitleText(scale == Scale::Count ? tr("flows") : tr("ms"));
        plot.y = y;
    }
    plot.chart->addAxis(plot.x, Qt::AlignBottom);
    plot.chart->addAxis(plot.y, Qt::AlignLeft);
    return plot;
}

QLineSeries* ChartsPanel::addSeries(Plot& plot, const QString& name)
{
    auto* s = new QLineSeries;
    s->setName(name);
    plot.chart->addSeries(s);
    s->attachAxis(plot.x);
    s->attachAxis(plot.y);
    plot.series << s;
    return s;
}

void ChartsPanel::rescale(Plot& plot, Scale scale)
{
    const double window = windowSeconds();
    const double from = std::max(0.0, lastT_ - window);
    const double to = std::max(lastT_, std::min(window, 10.0));
    plot.x->setRange(from, to);
    plot.x->setTickInterval(std::max(1.0, niceStep((to - from) / 5)));
    double top = 0;
    for (const QLineSeries* s : plot.series)
        top = std::max(top, visibleMax(s, from));
    if (scale == Scale::Rate) {
        auto* y = static_cast<QCategoryAxis*>(plot.y);
        const RateUnit& unit = rateUnit(top);
        const auto [step, end] = ticks(top / unit.bytes, unit.bytes == 1 ? 1 : 0.1);
        for (const QString& label : y->categoriesLabels())
            y->remove(label);
        for (int i = 0; i * step <= end * (1 + 1e-9); ++i)
            y->append(QString::number(i * step, 'g', 4), i * step * unit.bytes);
        y->setRange(0, end * unit.bytes);
        y->setTitleText(QString::fromLatin1(unit.name));
        return;
    }
    auto* y = static_cast<QValueAxis*>(plot.y);
    const auto [step, end] = ticks(top, scale == Scale::Count ? 1 : 0.1);
    y->setTickInterval(step);
    y->setRange(0, end);
}

void ChartsPanel::rescaleAll()
{
    rescale(rate_, Scale::Count);
    rescale(active_, Scale::Count);
    rescale(bytes_, Scale::Rate);
    rescale(latency_, Scale::Milliseconds);
}

void ChartsPanel::addFlows(const std::vector<engine::Flow>& updates)
{
    for (const engine::Flow& f : updates) {
        // Flow ids of two nodes may be equal; the node's name tells them apart.
        const uint64_t key = f.node.empty() ? f.flowId : f.flowId ^ std::hash<std::string>{}(f.node);
        auto it = timedHops_.find(key);
        const uint16_t noted = it == timedHops_.end() ? 0 : it->second;
        uint16_t now = noted;
        for (size_t i = 0; i < f.hops.size() && i < 16; ++i) {
            const engine::Hop& h = f.hops[i];
            const uint16_t bit = static_cast<uint16_t>(1u << i);
            if (h.redirectorId == 0 || h.connectMs < 0 || (noted & bit))
                continue;
            now |= bit;
            Times& t = pendingTimes_[h.redirector.empty() ? std::to_string(h.redirectorId) : h.redirector];
            t.sumMs += h.connectMs;
            ++t.count;
        }
        if (f.endNs != 0) {
            if (it != timedHops_.end())
                timedHops_.erase(it);
        } else if (now != noted) {
            if (it != timedHops_.end()) {
                it->second = now;
            } else {
                if (timedHops_.size() >= kTimedMemory)
                    timedHops_.clear();
                timedHops_.emplace(key, now);
            }
        }
    }
}

void ChartsPanel::addSample(double t, quint64 newFlows, quint64 activeFlows, const QMap<QString, quint64>& bytesTotal)
{
    lastT_ = t;
    rate_.series[0]->append(t, static_cast<double>(newFlows));
    active_.series[0]->append(t, static_cast<double>(activeFlows));
    for (auto it = bytesTotal.begin(); it != bytesTotal.end(); ++it) {
        QLineSeries*& s = bytesSeries_[it.key()];
        if (!s)
            s = addSeries(bytes_, it.key());
        quint64 last = lastBytes_.value(it.key(), it.value());
        lastBytes_[it.key()] = it.value();
        s->append(t, static_cast<double>(it.value() >= last ? it.value() - last : 0));
    }
    // The mean connect time of each redirector over the second; no point where none was measured.
    for (const auto& [name, times] : pendingTimes_) {
        const QString key = QString::fromStdString(name);
        QLineSeries*& s = latencySeries_[key];
        if (!s)
            s = addSeries(latency_, key);
        s->append(t, times.sumMs / times.count);
    }
    pendingTimes_.clear();
    for (Plot* plot : {&rate_, &active_, &bytes_, &latency_})
        for (QLineSeries* s : plot->series)
            trim(s);
    rescaleAll();
}

}  // namespace redirect::gui
