#include "filter_completer.h"

#include <QAbstractItemView>
#include <QCompleter>
#include <QInputDialog>
#include <QLineEdit>
#include <QMenu>
#include <QSettings>
#include <QStringListModel>
#include <QToolButton>

#include <set>

#include "engine_bridge.h"
#include "flow_model.h"
#include "report.h"

namespace redirect::gui {

namespace {

constexpr int kScanRows = 5000;     // newest rows scanned for seen values
constexpr int kMostValues = 200;

const char* const kSavedKey = "filters/saved";

// The word under the cursor: from after the last space before it, to the cursor.
int wordStart(const QString& text, int cursor)
{
    int start = cursor;
    while (start > 0 && !text.at(start - 1).isSpace())
        --start;
    return start;
}

}  // namespace

FilterCompleter::FilterCompleter(QLineEdit* edit, FlowModel* flows, EngineBridge* bridge, QObject* parent)
    : QObject(parent), edit_(edit), flows_(flows), bridge_(bridge)
{
    words_ = new QStringListModel(this);
    completer_ = new QCompleter(words_, this);
    completer_->setObjectName("filterCompleter");
    completer_->setCaseSensitivity(Qt::CaseInsensitive);
    completer_->setCompletionMode(QCompleter::PopupCompletion);
    // Not edit->setCompleter(): that would replace the whole text, not the word being typed.
    completer_->setWidget(edit_);
    connect(edit_, &QLineEdit::textEdited, this, &FilterCompleter::onEdited);
    connect(completer_, qOverload<const QString&>(&QCompleter::activated), this, &FilterCompleter::insert);
}

QStringList FilterCompleter::candidates(const QString& typed) const
{
    QString word = typed;
    QString sign;
    if (word.startsWith(QLatin1Char('-'))) {
        sign = QStringLiteral("-");
        word.remove(0, 1);
    }
    QStringList out;
    int colon = word.indexOf(QLatin1Char(':'));
    if (colon < 0) {
        for (const std::string& name : engine::FlowFilter::fieldNames()) {
            QString field = QString::fromStdString(name) + QLatin1Char(':');
            if (field.startsWith(word, Qt::CaseInsensitive))
                out << sign + field;
        }
        return out;
    }
    const QString field = word.left(colon).toLower();
    const QString prefix = word.mid(colon + 1);
    QStringList values;
    if (field == QLatin1String("rule")) {
        for (const engine::RuleSpec& rule : bridge_->rules().rules)
            values << QString::fromStdString(rule.id);
    } else if (field == QLatin1String("node")) {
        values = bridge_->nodeNames();
    } else if (field == QLatin1String("verdict")) {
        values = {"redirect", "direct", "bypass", "local", "stalled", "unverified"};
    } else if (field == QLatin1String("reason")) {
        for (auto r = int(engine::EndReason::Open); r <= int(engine::kLastEndReason); ++r)
            values << QString::fromLatin1(engine::endReasonName(engine::EndReason(r)));
    } else if (field == QLatin1String("protocol")) {
        values = {"tcp", "udp"};
    } else if (field == QLatin1String("redirector")) {
        for (const auto& r : bridge_->lastStats().redirectors)
            values << r.name;
    } else if (field == QLatin1String("comm")) {
        values = seenValues(FlowModel::Process, prefix);
    } else if (field == QLatin1String("port")) {
        values = seenValues(FlowModel::Destination, prefix);
    }
    for (const QString& value : values)
        if (value.startsWith(prefix, Qt::CaseInsensitive))
            out << sign + field + QLatin1Char(':') + value;
    out.removeDuplicates();
    return out;
}

QStringList FilterCompleter::seenValues(int column, const QString& prefix) const
{
    std::set<QString> seen;
    const int rows = flows_->rowCount();
    for (int row = rows - 1; row >= 0 && row >= rows - kScanRows && int(seen.size()) < kMostValues; --row) {
        QString value = flows_->data(flows_->index(row, column), FlowModel::RawRole).toString();
        if (column == FlowModel::Destination)
            value = value.mid(value.lastIndexOf(QLatin1Char(':')) + 1);  // its port
        if (!value.isEmpty() && value.startsWith(prefix, Qt::CaseInsensitive))
            seen.insert(value);
    }
    return QStringList(seen.begin(), seen.end());
}

void FilterCompleter::onEdited()
{
    const QString text = edit_->text();
    const int cursor = edit_->cursorPosition();
    const int start = wordStart(text, cursor);
    const QString word = text.mid(start, cursor - start);
    if (word.isEmpty() || word == QLatin1String("-")) {
        completer_->popup()->hide();
        return;
    }
    QStringList list = candidates(word);
    if (list.isEmpty() || (list.size() == 1 && list.front() == word)) {
        completer_->popup()->hide();
        return;
    }
    words_->setStringList(list);
    completer_->setCompletionPrefix(word);
    completer_->complete();
}

void FilterCompleter::insert(const QString& completion)
{
    QString text = edit_->text();
    const int cursor = edit_->cursorPosition();
    const int start = wordStart(text, cursor);
    text.replace(start, cursor - start, completion);
    edit_->setText(text);  // textChanged: the filter applies
    edit_->setCursorPosition(start + int(completion.size()));
}

SavedFilters::SavedFilters(QLineEdit* edit, QObject* parent) : QObject(parent), edit_(edit)
{
    button_ = new QToolButton;
    button_->setObjectName("savedFiltersButton");
    button_->setText(tr("Saved"));
    button_->setToolTip(tr("Saved filters: apply one, or save the current filter under a name"));
    button_->setPopupMode(QToolButton::InstantPopup);
    button_->setMenu(new QMenu(button_));
    rebuildMenu();
}

QStringList SavedFilters::names() const { return QSettings().value(kSavedKey).toMap().keys(); }

bool SavedFilters::save(const QString& name, const QString& text)
{
    if (name.trimmed().isEmpty() || text.trimmed().isEmpty())
        return false;
    QSettings settings;
    QVariantMap saved = settings.value(kSavedKey).toMap();
    saved.insert(name.trimmed(), text);
    settings.setValue(kSavedKey, saved);
    rebuildLater();
    return true;
}

bool SavedFilters::apply(const QString& name)
{
    QVariantMap saved = QSettings().value(kSavedKey).toMap();
    auto it = saved.find(name);
    if (it == saved.end())
        return false;
    edit_->setText(it->toString());
    return true;
}

void SavedFilters::remove(const QString& name)
{
    QSettings settings;
    QVariantMap saved = settings.value(kSavedKey).toMap();
    saved.remove(name);
    settings.setValue(kSavedKey, saved);
    rebuildLater();
}

void SavedFilters::rebuildLater()
{
    // Not now: this may run inside one of the menu's own actions, which rebuilding deletes.
    QMetaObject::invokeMethod(this, [this] { rebuildMenu(); }, Qt::QueuedConnection);
}

void SavedFilters::rebuildMenu()
{
    QMenu* menu = button_->menu();
    menu->clear();
    QAction* saveAction = menu->addAction(tr("Save current filter…"));
    connect(saveAction, &QAction::triggered, this, [this] {
        if (edit_->text().trimmed().isEmpty())
            return;
        bool ok = false;
        QString name = QInputDialog::getText(edit_->window(), tr("Save filter"), tr("Name for \"%1\":").arg(edit_->text()),
                                             QLineEdit::Normal, {}, &ok);
        if (ok)
            save(name, edit_->text());
    });
    const QVariantMap saved = QSettings().value(kSavedKey).toMap();
    if (saved.isEmpty())
        return;
    menu->addSeparator();
    for (auto it = saved.begin(); it != saved.end(); ++it) {
        QAction* a = menu->addAction(it.key());
        a->setToolTip(it.value().toString());
        connect(a, &QAction::triggered, this, [this, name = it.key()] { apply(name); });
    }
    QMenu* remove = menu->addMenu(tr("Delete"));
    for (auto it = saved.begin(); it != saved.end(); ++it)
        connect(remove->addAction(it.key()), &QAction::triggered, this, [this, name = it.key()] { this->remove(name); });
}

}  // namespace redirect::gui
