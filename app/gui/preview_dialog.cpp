#include "preview_dialog.h"

#include <QDialogButtonBox>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>

namespace redirect::gui {

namespace {

QString qs(const std::string& text) { return QString::fromStdString(text); }

QString minutes(uint32_t seconds)
{
    return seconds % 60 == 0 ? QObject::tr("%n minute(s)", nullptr, int(seconds / 60))
                             : QObject::tr("%n second(s)", nullptr, int(seconds));
}

}  // namespace

PreviewDialog::PreviewDialog(const QString& what, const std::optional<v1::RulesPreview>& preview, const QString& error,
                             QWidget* parent)
    : QDialog(parent)
{
    setObjectName("rulesPreviewDialog");
    setWindowTitle(tr("Before it applies: %1").arg(what));
    auto* layout = new QVBoxLayout(this);
    headline_ = new QLabel;
    headline_->setObjectName("previewHeadline");
    headline_->setWordWrap(true);
    layout->addWidget(headline_);
    examples_ = new QTableWidget(0, 5);
    examples_->setObjectName("previewExamples");
    examples_->setHorizontalHeaderLabels({tr("Process"), tr("Destination"), tr("Now"), tr("After the change"), tr("Rule after")});
    examples_->verticalHeader()->hide();
    examples_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    examples_->horizontalHeader()->setStretchLastSection(true);
    layout->addWidget(examples_, 1);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Apply | QDialogButtonBox::Cancel);
    buttons->button(QDialogButtonBox::Apply)->setObjectName("previewApply");
    buttons->button(QDialogButtonBox::Cancel)->setObjectName("previewCancel");
    connect(buttons->button(QDialogButtonBox::Apply), &QPushButton::clicked, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    layout->addWidget(buttons);
    resize(820, 420);

    if (!preview) {
        headline_->setText(tr("%1: the node could not say what this would change (%2). Apply it anyway?").arg(what, error));
        examples_->hide();
        return;
    }
    if (!preview->ok()) {
        const v1::RuleError& e = preview->error();
        headline_->setText(tr("%1 would not apply: %2%3")
                               .arg(what, e.line() ? tr("%1:%2: ").arg(e.line()).arg(e.column()) : QString(),
                                    qs(e.message())));
        headline_->setStyleSheet("color: #b00020;");
        buttons->button(QDialogButtonBox::Apply)->setEnabled(false);
        examples_->hide();
        return;
    }
    headline_->setText(tr("%1 would send %2 of the %3 connections seen in the last %4 another way.")
                           .arg(what)
                           .arg(preview->changed())
                           .arg(preview->considered())
                           .arg(minutes(preview->window_seconds())));
    for (const v1::RouteChange& change : preview->examples()) {
        const int row = examples_->rowCount();
        examples_->insertRow(row);
        const v1::Flow& f = change.flow();
        const QStringList cells = {QStringLiteral("%1 [%2]").arg(qs(f.comm())).arg(f.pid()), qs(f.destination()),
                                   qs(change.before()), qs(change.after()), qs(change.rule_after())};
        for (int c = 0; c < cells.size(); ++c) {
            auto* item = new QTableWidgetItem(cells[c]);
            item->setToolTip(cells[c]);
            examples_->setItem(row, c, item);
        }
    }
    examples_->resizeColumnsToContents();
    if (preview->examples_size() == 0)
        examples_->hide();
}

QString PreviewDialog::headline() const { return headline_->text(); }

}  // namespace redirect::gui
