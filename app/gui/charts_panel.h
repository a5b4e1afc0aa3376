// Charts (Qt Charts): new flows per second, active flows, bytes per second per redirector and
// connect time per redirector, over a window of 1, 5 or 15 minutes chosen on the panel.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <QMap>
#include <QWidget>

#include "flow.h"

class QAbstractAxis;
class QChart;
class QComboBox;
class QLineSeries;
class QValueAxis;

namespace redirect::gui {

class ChartsPanel : public QWidget {
    Q_OBJECT
public:
    explicit ChartsPanel(QWidget* parent = nullptr);
    /// One sample a second: new flows in that second, flows open now, bytes moved per redirector
    /// (cumulative). Also plots the connect times noted since the last sample.
    void addSample(double tSeconds, quint64 newFlows, quint64 activeFlows, const QMap<QString, quint64>& bytesTotal);
    /// Notes the upstream connect time of each redirector hop in a batch of flow updates, once per
    /// hop of a flow; hops whose time is unknown (external proxies) are left out, not taken as 0.
    /// Cheap per update (one hash lookup), for the GUI thread at thousands of flows a second.
    void addFlows(const std::vector<engine::Flow>& updates);
    /// Seconds shown (60, 300 or 900), as chosen in the panel's combo box.
    double windowSeconds() const;

private:
    struct Plot {
        QChart* chart = nullptr;
        QValueAxis* x = nullptr;
        QAbstractAxis* y = nullptr;
        QList<QLineSeries*> series;
    };
    enum class Scale { Count, Rate, Milliseconds };
    Plot makePlot(const QString& title, const QString& objectName, Scale scale);
    QLineSeries* addSeries(Plot& plot, const QString& name);
    void rescale(Plot& plot, Scale scale);
    void rescaleAll();

    QComboBox* window_ = nullptr;
    Plot rate_, active_, bytes_, latency_;
    QMap<QString, QLineSeries*> bytesSeries_;
    QMap<QString, QLineSeries*> latencySeries_;
    QMap<QString, quint64> lastBytes_;
    double lastT_ = 0;
    struct Times {
        double sumMs = 0;
        int count = 0;
    };
    std::unordered_map<std::string, Times> pendingTimes_;  // per redirector, since the last sample
    std::unordered_map<uint64_t, uint16_t> timedHops_;     // flow -> hops already noted (bit per hop)
};

}  // namespace redirect::gui
