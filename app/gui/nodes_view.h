// The Nodes tab: every node the console watches, with its state (connected, reconnecting,
// refused and why), version, callout scope, new flows per second and drops.
#pragma once

#include <QTableWidget>

#include "engine_bridge.h"

namespace redirect::gui {

class NodesView : public QTableWidget {
    Q_OBJECT
public:
    enum Column { Name, State, Version, Scope, FlowsPerSecond, Drops, ColumnCount };
    explicit NodesView(QWidget* parent = nullptr);
    void show(const QList<BridgeStats::NodeLine>& nodes);
};

}  // namespace redirect::gui
