#include "nodes_view.h"

#include <QHeaderView>

namespace redirect::gui {

NodesView::NodesView(QWidget* parent) : QTableWidget(0, ColumnCount, parent)
{
    setObjectName("nodesView");
    setHorizontalHeaderLabels({tr("Node"), tr("State"), tr("Version"), tr("Callout scope"), tr("Flows/s"), tr("Drops")});
    verticalHeader()->hide();
    horizontalHeader()->setStretchLastSection(true);
    setEditTriggers(QAbstractItemView::NoEditTriggers);
    setSelectionBehavior(QAbstractItemView::SelectRows);
}

void NodesView::show(const QList<BridgeStats::NodeLine>& nodes)
{
    setRowCount(static_cast<int>(nodes.size()));
    for (int r = 0; r < nodes.size(); ++r) {
        const BridgeStats::NodeLine& n = nodes[r];
        const QString state = n.reason.isEmpty() ? n.state : tr("%1: %2").arg(n.state, n.reason);
        const QStringList cells{n.name, state, n.version, n.scope, QString::number(n.flowsPerSecond, 'f', 1),
                                QString::number(n.drops)};
        for (int c = 0; c < ColumnCount; ++c) {
            auto* item = new QTableWidgetItem(cells[c]);
            if (c == State && n.state != QStringLiteral("connected"))
                item->setForeground(QColor(0xb0, 0x00, 0x20));
            setItem(r, c, item);
        }
    }
}

}  // namespace redirect::gui
