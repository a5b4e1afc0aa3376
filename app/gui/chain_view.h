// Draws one flow's chain: app -> each redirector -> destination, with each
// hop's redirect state, connect latency (datagrams for UDP) and bytes.
#pragma once

#include <QColor>
#include <QWidget>

#include <array>
#include <optional>
#include <vector>

#include "flow.h"

namespace redirect::gui {

/// One box of the drawing: a title and its lines of text.
struct ChainBox {
    QString title;
    std::array<QString, 4> lines;
    QColor color;
};

class ChainView : public QWidget {
    Q_OBJECT
public:
    explicit ChainView(QWidget* parent = nullptr);
    void setFlow(const std::optional<engine::Flow>& flow);
    const std::optional<engine::Flow>& flow() const { return flow_; }
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

protected:
    void paintEvent(QPaintEvent* event) override;

private:
    static std::vector<ChainBox> boxesOf(const engine::Flow& flow);

    std::optional<engine::Flow> flow_;
    std::vector<ChainBox> boxes_;  // built once per flow; also the accessible description
};

}  // namespace redirect::gui
