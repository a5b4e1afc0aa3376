#include "nodes_view.h"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QPushButton>
#include <QSettings>
#include <QSignalBlocker>
#include <QVBoxLayout>

#include <spdlog/spdlog.h>

#include "connect_dialog.h"

namespace redirect::gui {

void addRememberedNodes(EngineBridge& bridge)
{
    QSettings settings;
    for (const client::NodeEndpoint& e : rememberedNodes(settings)) {
        QString error;
        if (!bridge.addNode(e, &error))
            spdlog::warn("remembered node {} ({}) not added: {}", e.name, e.target, error.toStdString());
    }
}

NodesView::NodesView(QWidget* parent) : QTableWidget(0, ColumnCount, parent)
{
    setObjectName("nodesView");
    setHorizontalHeaderLabels({tr("Node"), tr("State"), tr("Version"), tr("Callout scope"), tr("Flows/s"), tr("Drops")});
    verticalHeader()->hide();
    // The scope (a long cgroup path) takes the room; its tail is what tells nodes apart.
    horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    horizontalHeader()->setSectionResizeMode(Scope, QHeaderView::Stretch);
    setWordWrap(false);
    setTextElideMode(Qt::ElideLeft);
    setEditTriggers(QAbstractItemView::NoEditTriggers);
    setSelectionBehavior(QAbstractItemView::SelectRows);
    setSelectionMode(QAbstractItemView::SingleSelection);
}

void NodesView::show(const QList<BridgeStats::NodeLine>& nodes)
{
    QSignalBlocker block(this);  // new items are not the user's choice of node
    const QString current = currentRow() >= 0 && item(currentRow(), Name) ? item(currentRow(), Name)->text() : QString();
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
            if (c == State || c == Scope)
                item->setToolTip(cells[c]);
            setItem(r, c, item);
        }
    }
    markSelected(current);
}

void NodesView::markSelected(const QString& name)
{
    QSignalBlocker block(this);
    for (int r = 0; r < rowCount(); ++r)
        if (item(r, Name) && item(r, Name)->text() == name) {
            selectRow(r);
            return;
        }
}

NodesPage::NodesPage(EngineBridge* bridge, QWidget* parent) : QWidget(parent), bridge_(bridge)
{
    auto* layout = new QHBoxLayout(this);
    table_ = new NodesView;
    layout->addWidget(table_, 1);
    auto* buttons = new QVBoxLayout;
    auto* add = new QPushButton(tr("Connect to node…"));
    add->setObjectName("connectNodeButton");
    remove_ = new QPushButton(tr("Remove"));
    remove_->setObjectName("removeNodeButton");
    remove_->setToolTip(tr("Stop watching the selected node (and forget it, if it was remembered)"));
    buttons->addWidget(add);
    buttons->addWidget(remove_);
    buttons->addStretch();
    layout->addLayout(buttons);
    connect(add, &QPushButton::clicked, this, [this] { openConnectDialog(); });
    connect(remove_, &QPushButton::clicked, this, [this] { removeSelected(); });
    // The row chosen is the node the Rules tab follows, and the other way round.
    connect(table_, &QTableWidget::itemSelectionChanged, this, [this] {
        const int r = table_->currentRow();
        if (r >= 0 && table_->item(r, NodesView::Name))
            bridge_->selectNode(table_->item(r, NodesView::Name)->text());
    });
    connect(bridge_, &EngineBridge::nodesChanged, this, [this] { table_->markSelected(bridge_->selectedNode()); });
}

ConnectDialog* NodesPage::openConnectDialog()
{
    auto* dialog = new ConnectDialog([this](const client::NodeEndpoint& e, QString* error) {
        if (!bridge_->addNode(e, error))
            return false;
        QSettings settings;
        rememberNode(settings, e);
        return true;
    }, this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->open();
    return dialog;
}

bool NodesPage::removeSelected()
{
    const int r = table_->currentRow();
    if (r < 0 || !table_->item(r, NodesView::Name))
        return false;
    const QString name = table_->item(r, NodesView::Name)->text();
    QSettings settings;
    forgetNode(settings, name);
    return bridge_->removeNode(name);
}

}  // namespace redirect::gui
