// Charts (Qt Charts): flows per second, active flows, bytes per second per redirector.
#pragma once

#include <QMap>
#include <QWidget>

class QChart;
class QLineSeries;
class QValueAxis;

namespace redirect::gui {

class ChartsPanel : public QWidget {
    Q_OBJECT
public:
    explicit ChartsPanel(QWidget* parent = nullptr);
    /// One sample a second: new flows in that second, flows open now, bytes moved per redirector (cumulative).
    void addSample(double tSeconds, quint64 newFlows, quint64 activeFlows, const QMap<QString, quint64>& bytesTotal);

private:
    struct Plot {
        QChart* chart = nullptr;
        QValueAxis* x = nullptr;
        QValueAxis* y = nullptr;
    };
    Plot makePlot(const QString& title, const QString& unit);
    void scroll(Plot& plot, double t, double maxY);

    Plot rate_, active_, bytes_;
    QLineSeries* rateSeries_ = nullptr;
    QLineSeries* activeSeries_ = nullptr;
    QMap<QString, QLineSeries*> bytesSeries_;
    QMap<QString, quint64> lastBytes_;
    double maxRate_ = 1, maxActive_ = 1, maxBytes_ = 1;
};

}  // namespace redirect::gui
