// The legend under the flow table: one swatch per kind of row (flow_colors.h), each with its
// meaning as a tooltip.
#pragma once

class QWidget;

namespace redirect::gui {

QWidget* makeFlowLegend(QWidget* parent);

}  // namespace redirect::gui
