#include "charts_panel.h"

#include <QCategoryAxis>
#include <QChart>
#include <QChartView>
#include <QHBoxLayout>
#include <QLineSeries>
#include <QValueAxis>

#include <cmath>

#include "format.h"

namespace redirect::gui {

namespace {
constexpr double kWindowSeconds = 120;  // what the charts show; older points are dropped
constexpr int kMaxPoints = 130;

void trim(QLineSeries* s)
{
    if (s->count() > kMaxPoints)
        s->removePoints(0, s->count() - kMaxPoints);
}

// About four ticks at 1, 2 or 5 times a power of ten of the unit the top shows in (B, KiB, MiB...).
double rateStep(double top)
{
    double unit = 1;
    while (unit * 1024 <= top)
        unit *= 1024;
    const double wanted = top / unit / 4;
    const double decade = std::pow(10.0, std::floor(std::log10(wanted)));
    for (double m : {1.0, 2.0, 5.0})
        if (m * decade >= wanted)
            return m * decade * unit;
    return 10 * decade * unit;
}

// The series keep raw bytes per second; only the labels are scaled, by the table's formatter.
void labelRates(QCategoryAxis* axis, double top)
{
    for (const QString& label : axis->categoriesLabels())
        axis->remove(label);
    const double step = rateStep(top);
    for (int i = 0; i * step <= top; ++i)
        axis->append(QString::fromStdString(engine::formatRate(i * step)), i * step);
}
}  // namespace

ChartsPanel::ChartsPanel(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QHBoxLayout(this);
    rate_ = makePlot(tr("New flows per second"), tr("flows/s"));
    active_ = makePlot(tr("Active flows"), tr("flows"));
    bytes_ = makePlot(tr("Bytes per second per redirector"), QString());
    // Labels such as "1.5 MiB/s" at their values: a category axis in place of the plain one.
    auto* rates = new QCategoryAxis;
    rates->setLabelsPosition(QCategoryAxis::AxisLabelsPositionOnValue);
    bytes_.chart->removeAxis(bytes_.y);
    delete bytes_.y;
    bytes_.y = rates;
    bytes_.chart->addAxis(rates, Qt::AlignLeft);
    rateSeries_ = new QLineSeries;
    activeSeries_ = new QLineSeries;
    for (auto [plot, series] : {std::pair{&rate_, rateSeries_}, std::pair{&active_, activeSeries_}}) {
        plot->chart->addSeries(series);
        series->attachAxis(plot->x);
        series->attachAxis(plot->y);
        plot->chart->legend()->hide();
    }
    for (Plot* plot : {&rate_, &active_, &bytes_}) {
        auto* view = new QChartView(plot->chart);
        view->setRenderHint(QPainter::Antialiasing);
        view->setMinimumHeight(180);
        layout->addWidget(view);
    }
}

ChartsPanel::Plot ChartsPanel::makePlot(const QString& title, const QString& unit)
{
    Plot plot;
    plot.chart = new QChart;
    plot.chart->setTitle(title);
    plot.chart->setMargins(QMargins(4, 4, 4, 4));
    plot.x = new QValueAxis;
    plot.x->setTitleText(tr("seconds"));
    plot.x->setLabelFormat("%d");
    plot.y = new QValueAxis;
    plot.y->setTitleText(unit);
    plot.y->setLabelFormat("%.0f");
    plot.chart->addAxis(plot.x, Qt::AlignBottom);
    plot.chart->addAxis(plot.y, Qt::AlignLeft);
    return plot;
}

void ChartsPanel::scroll(Plot& plot, double t, double maxY)
{
    plot.x->setRange(std::max(0.0, t - kWindowSeconds), std::max(t, 10.0));
    const double top = maxY * 1.15 + 1;
    plot.y->setRange(0, top);
    if (auto* rates = qobject_cast<QCategoryAxis*>(plot.y))
        labelRates(rates, top);
}

void ChartsPanel::addSample(double t, quint64 newFlows, quint64 activeFlows, const QMap<QString, quint64>& bytesTotal)
{
    rateSeries_->append(t, static_cast<double>(newFlows));
    activeSeries_->append(t, static_cast<double>(activeFlows));
    trim(rateSeries_);
    trim(activeSeries_);
    maxRate_ = std::max(maxRate_, static_cast<double>(newFlows));
    maxActive_ = std::max(maxActive_, static_cast<double>(activeFlows));
    for (auto it = bytesTotal.begin(); it != bytesTotal.end(); ++it) {
        QLineSeries*& s = bytesSeries_[it.key()];
        if (!s) {
            s = new QLineSeries;
            s->setName(it.key());
            bytes_.chart->addSeries(s);
            s->attachAxis(bytes_.x);
            s->attachAxis(bytes_.y);
        }
        quint64 last = lastBytes_.value(it.key(), it.value());
        double rate = static_cast<double>(it.value() >= last ? it.value() - last : 0);
        lastBytes_[it.key()] = it.value();
        s->append(t, rate);
        trim(s);
        maxBytes_ = std::max(maxBytes_, rate);
    }
    scroll(rate_, t, maxRate_);
    scroll(active_, t, maxActive_);
    scroll(bytes_, t, maxBytes_);
}

}  // namespace redirect::gui
