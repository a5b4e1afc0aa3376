#include "rules_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFontDatabase>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPointer>
#include <QPushButton>
#include <QSettings>
#include <QSignalBlocker>
#include <QTableView>
#include <QTextBlock>
#include <QVBoxLayout>

#include "output_file.h"
#include "preview_dialog.h"
#include "rule_form.h"
#include "rules.h"
#include "rules_model.h"

namespace redirect::gui {

RulesPanel::RulesPanel(RulesModel* rules, EngineBridge* bridge, QWidget* parent)
    : QWidget(parent), rules_(rules), bridge_(bridge)
{
    auto* outer = new QVBoxLayout(this);
    auto* top = new QHBoxLayout;
    node_ = new QComboBox;
    node_->setObjectName("rulesNode");
    node_->setToolTip(tr("The node whose rules this panel shows and edits (also: select it in the Nodes tab)"));
    top->addWidget(new QLabel(tr("Rules of node")));
    top->addWidget(node_);
    top->addStretch();
    preview_ = new QCheckBox(tr("Show what a change does before it applies"));
    preview_->setObjectName("previewChanges");
    preview_->setToolTip(tr("A dry run on the node: which of the connections it saw in the last 10 minutes "
                            "the change would send another way"));
    preview_->setChecked(QSettings().value("rules/preview", true).toBool());
    connect(preview_, &QCheckBox::toggled, this, [this](bool on) {
        QSettings().setValue("rules/preview", on);
        updateGate();
    });
    top->addWidget(preview_);
    outer->addLayout(top);
    auto* layout = new QHBoxLayout;
    outer->addLayout(layout, 1);
    connect(node_, &QComboBox::activated, this, [this](int index) { bridge_->selectNode(node_->itemText(index)); });
    connect(bridge_, &EngineBridge::nodesChanged, this, [this] {
        QSignalBlocker block(node_);
        node_->clear();
        node_->addItems(bridge_->nodeNames());
        node_->setCurrentText(bridge_->selectedNode());
    });
    node_->addItems(bridge_->nodeNames());
    node_->setCurrentText(bridge_->selectedNode());
    view_ = new QTableView;
    view_->setObjectName("rulesView");
    view_->setModel(rules_);
    view_->setSelectionBehavior(QAbstractItemView::SelectRows);
    view_->verticalHeader()->hide();
    view_->horizontalHeader()->setStretchLastSection(true);
    layout->addWidget(view_, 1);
    auto* buttons = new QVBoxLayout;
    auto add = [&](const QString& text, const char* name, auto slot) {
        auto* b = new QPushButton(text);
        b->setObjectName(name);
        b->setEnabled(false);  // until the node says this user may change it
        buttons_ << b;
        connect(b, &QPushButton::clicked, this, slot);
        buttons->addWidget(b);
    };
    add(tr("Move up"), "ruleUp", [this] {
        int row = view_->currentIndex().row();
        if (row > 0 && rules_->moveUp(row))
            view_->selectRow(row - 1);
    });
    add(tr("Move down"), "ruleDown", [this] {
        int row = view_->currentIndex().row();
        if (row >= 0 && rules_->moveDown(row))
            view_->selectRow(row + 1);
    });
    add(tr("Add rule…"), "ruleAdd", [this] { openForm(-1); });
    add(tr("Edit rule…"), "ruleEditForm", [this] { openForm(view_->currentIndex().row()); });
    add(tr("Edit JSON…"), "ruleEdit", [this] { editRules(); });
    add(tr("Import…"), "ruleImport", [this] { importRules(); });
    add(tr("Export…"), "ruleExport", [this] { exportRules(); });
    buttons->addStretch();
    layout->addLayout(buttons);
    updateGate();
}

void RulesPanel::openForm(int row, const engine::Flow* like, engine::RuleAction action)
{
    const engine::RuleSet current = rules_->rules();
    if (row >= int(current.rules.size()))
        row = -1;
    auto* form = new RuleForm(current, row, this);
    form->setAttribute(Qt::WA_DeleteOnClose);
    if (like)
        form->prefill(*like, action);
    connect(form, &QDialog::accepted, this, [this, form, row] {
        std::optional<engine::RuleSet> set = form->ruleSet(nullptr);
        if (!set)
            return;
        const QString id = QString::fromStdString(set->rules[row < 0 ? 0 : size_t(row)].id);
        propose(row < 0 ? tr("New rule %1").arg(id) : tr("Changed rule %1").arg(id), *set, [this, rules = *set] {
            bridge_->applyRules(rules, [this](bool ok, const QString& why) {
                if (!ok)
                    QMessageBox::warning(this, tr("Rules"), tr("Nothing was changed.\n\n%1").arg(why));
            });
        });
    });
    form_ = form;
    form->open();
}

void RulesPanel::updateGate()
{
    if (!preview_->isChecked()) {
        rules_->setGate({});
        return;
    }
    rules_->setGate([this](const QString& what, const engine::RuleSet& proposed, std::function<void()> proceed) {
        propose(what, proposed, std::move(proceed));
    });
}

void RulesPanel::propose(const QString& what, const engine::RuleSet& proposed, std::function<void()> proceed,
                         QWidget* over, std::function<void()> cancelled)
{
    if (!preview_->isChecked()) {
        proceed();
        return;
    }
    QPointer<QWidget> parent = over ? over : this;
    bridge_->previewRules(proposed, kPreviewWindowSeconds,
                          [parent, what, proceed = std::move(proceed), cancelled = std::move(cancelled)](
                              std::optional<v1::RulesPreview> preview, const QString& error) {
                              if (!parent)
                                  return;
                              auto* dialog = new PreviewDialog(what, preview, error, parent);
                              dialog->setAttribute(Qt::WA_DeleteOnClose);
                              connect(dialog, &QDialog::accepted, parent, proceed);
                              if (cancelled)
                                  connect(dialog, &QDialog::rejected, parent, cancelled);
                              dialog->open();
                          });
}

void RulesPanel::setCanChange(bool canChange)
{
    for (QPushButton* b : buttons_)
        b->setEnabled(canChange);
}

void RulesPanel::editRules()
{
    QDialog dialog(this);
    dialog.setWindowTitle(tr("Edit rules"));
    auto* layout = new QVBoxLayout(&dialog);
    auto* help = new QLabel(tr("Rules apply in order; the first match decides. \"expires\" (RFC 3339) makes a "
                               "temporary rule. Applying is all or nothing."));
    help->setWordWrap(true);
    auto* text = new QPlainTextEdit(QString::fromStdString(engine::rulesToJson(bridge_->rules())));
    text->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    auto* error = new QLabel;
    error->setStyleSheet("color: #b00020;");
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Apply | QDialogButtonBox::Cancel);
    layout->addWidget(help);
    layout->addWidget(text, 1);
    layout->addWidget(error);
    layout->addWidget(buttons);
    dialog.resize(760, 560);
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    connect(buttons->button(QDialogButtonBox::Apply), &QPushButton::clicked, &dialog, [&] {
        engine::RulesResult parsed = engine::parseRules(text->toPlainText().toStdString());
        if (!parsed.ok()) {
            const QString message = QString::fromStdString(parsed.error.str());
            QTextCursor cursor(text->document()->findBlockByNumber(std::max(0, parsed.error.line - 1)));
            cursor.movePosition(QTextCursor::Right, QTextCursor::MoveAnchor, std::max(0, parsed.error.column - 1));
            text->setTextCursor(cursor);
            text->setFocus();
            error->setText(message);
            return;
        }
        // The node answers later; the dialog stays until it did (and closes only if it took them).
        buttons->setEnabled(false);
        error->setText(tr("Applying…"));
        auto apply = [this, rules = parsed.rules, dialog = QPointer<QDialog>(&dialog), buttons, error] {
            bridge_->applyRules(rules, [dialog, buttons, error](bool ok, const QString& why) {
                if (!dialog)
                    return;
                buttons->setEnabled(true);
                if (ok)
                    dialog->accept();
                else
                    error->setText(tr("Nothing was changed: %1").arg(why));
            });
        };
        propose(tr("The edited rules"), parsed.rules, apply, &dialog, [buttons, error] {
            buttons->setEnabled(true);  // cancelled in the preview: edit on
            error->clear();
        });
    });
    dialog.exec();
}

void RulesPanel::importRules()
{
    QString path = QFileDialog::getOpenFileName(this, tr("Import rules"), {}, tr("Rules (*.json)"));
    if (path.isEmpty())
        return;
    engine::RulesResult parsed = engine::loadRulesFile(path.toStdString());
    auto refused = [window = QPointer<RulesPanel>(this)](const QString& message) {
        if (window)
            QMessageBox::warning(window, tr("Import rules"), tr("Nothing was changed.\n\n%1").arg(message));
    };
    if (!parsed.ok()) {
        refused(path + ':' + QString::fromStdString(parsed.error.str()));
        return;
    }
    propose(tr("Importing %1").arg(QFileInfo(path).fileName()), parsed.rules, [this, rules = parsed.rules, refused] {
        bridge_->applyRules(rules, [refused](bool ok, const QString& why) {
            if (!ok)
                refused(why);
        });
    });
}

void RulesPanel::exportRules()
{
    QString path = QFileDialog::getSaveFileName(this, tr("Export rules"), "rules.json", tr("Rules (*.json)"));
    if (path.isEmpty())
        return;
    const std::string json = engine::rulesToJson(bridge_->rules());
    std::string error;
    if (!engine::writeWholeFile(
            path.toStdString(), [&](std::ostream& out) { return bool(out << json); }, &error))
        QMessageBox::warning(this, tr("Export rules"), tr("Cannot write %1: %2").arg(path, QString::fromStdString(error)));
}

}  // namespace redirect::gui
