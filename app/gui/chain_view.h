// Draws one flow's chain: app -> each redirector -> destination, with each
// hop's redirect state, connect latency and bytes.
#pragma once

#include <QWidget>

#include <optional>

#include "flow.h"

namespace redirect::gui {

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
    std::optional<engine::Flow> flow_;
};

}  // namespace redirect::gui
