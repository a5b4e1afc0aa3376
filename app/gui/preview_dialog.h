// The dry run's answer before a rule change applies: how many of the connections the node saw in
// the last minutes would go another way, with examples (before and after), and Apply or Cancel.
#pragma once

#include <QDialog>

#include <optional>

#include "node_client.h"

class QLabel;
class QTableWidget;

namespace redirect::gui {

class PreviewDialog : public QDialog {
    Q_OBJECT
public:
    /// `preview` nullopt: the node could not be asked (`error` says why); Apply stays possible.
    PreviewDialog(const QString& what, const std::optional<v1::RulesPreview>& preview, const QString& error,
                  QWidget* parent = nullptr);

    QString headline() const;
    QTableWidget* examples() const { return examples_; }

private:
    QLabel* headline_ = nullptr;
    QTableWidget* examples_ = nullptr;
};

}  // namespace redirect::gui
