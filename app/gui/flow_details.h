// The "Flow details" pane: the chain drawing (each hop with the rule that sent it there), the
// datagrams of each hop of a UDP flow, and the records and context of the flow as hex.
#pragma once

#include <QWidget>

#include <optional>

#include "flow.h"

class QLabel;
class QPlainTextEdit;

namespace redirect::gui {

class ChainView;

class FlowDetails : public QWidget {
    Q_OBJECT
public:
    explicit FlowDetails(QWidget* parent = nullptr);

    /// Shows `flow`, or nothing (nullopt: no flow selected, or it left the view).
    void setFlow(const std::optional<engine::Flow>& flow);
    ChainView* chainView() const { return chain_; }
    /// "UDP datagrams up / down per hop: 3 / 3 → 3 / 3"; hidden for TCP flows.
    QLabel* datagramsLabel() const { return datagrams_; }

private:
    ChainView* chain_ = nullptr;
    QPlainTextEdit* recordsHex_ = nullptr;
    QPlainTextEdit* contextHex_ = nullptr;
    QLabel* recordsSize_ = nullptr;
    QLabel* contextSize_ = nullptr;
    QLabel* datagrams_ = nullptr;
};

/// A read-only text view in the system's fixed font.
QPlainTextEdit* monospaceView(QWidget* parent = nullptr);

}  // namespace redirect::gui
