#include "flow_legend.h"

#include <QHBoxLayout>
#include <QLabel>

#include "flow_colors.h"

namespace redirect::gui {

QWidget* makeFlowLegend(QWidget* parent)
{
    auto* legend = new QWidget(parent);
    legend->setObjectName(QStringLiteral("flowLegend"));
    auto* layout = new QHBoxLayout(legend);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(6);
    for (const LegendEntry& entry : flowLegend()) {
        FlowLook look = flowLookOf(entry.kind);
        auto* swatch = new QLabel(entry.label, legend);
        swatch->setObjectName(QStringLiteral("legend-%1").arg(static_cast<int>(entry.kind)));
        QString style = QStringLiteral("padding: 0px 6px; border: 1px solid #b0b0b0;");
        if (look.background.isValid())
            style += QStringLiteral("background: %1;").arg(look.background.name());
        if (look.foreground.isValid())
            style += QStringLiteral("color: %1;").arg(look.foreground.name());
        swatch->setStyleSheet(style);
        swatch->setToolTip(entry.meaning);
        layout->addWidget(swatch);
    }
    layout->addStretch(1);
    return legend;
}

}  // namespace redirect::gui
