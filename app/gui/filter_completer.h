// Typing help for the flow filter: completion of field names (port:, rule:, node:, verdict:, …)
// and of their values (the selected node's rule ids, the nodes, verdicts, end reasons, and
// processes and ports seen), for the word under the cursor; and filters saved by name.
#pragma once

#include <QObject>
#include <QStringList>

class QCompleter;
class QLineEdit;
class QStringListModel;
class QToolButton;

namespace redirect::gui {

class EngineBridge;
class FlowModel;

class FilterCompleter : public QObject {
    Q_OBJECT
public:
    FilterCompleter(QLineEdit* edit, FlowModel* flows, EngineBridge* bridge, QObject* parent = nullptr);

    /// Whole words that may replace `word` (the text from the last space to the cursor).
    QStringList candidates(const QString& word) const;
    QCompleter* completer() const { return completer_; }

private:
    void onEdited();
    void insert(const QString& completion);
    /// Distinct values of one column over the newest rows (bounded: this runs on a key press).
    QStringList seenValues(int column, const QString& prefixOf) const;

    QLineEdit* edit_;
    FlowModel* flows_;
    EngineBridge* bridge_;
    QCompleter* completer_;
    QStringListModel* words_;
};

/// A toolbar button with a menu: save the current filter under a name, apply or delete a saved one.
/// Kept in QSettings ("filters/saved"), so they survive restarts.
class SavedFilters : public QObject {
    Q_OBJECT
public:
    SavedFilters(QLineEdit* edit, QObject* parent = nullptr);

    QToolButton* button() const { return button_; }
    QStringList names() const;
    /// False (and nothing saved) for an empty name or an empty filter.
    bool save(const QString& name, const QString& text);
    bool apply(const QString& name);
    void remove(const QString& name);

private:
    void rebuildMenu();
    void rebuildLater();

    QLineEdit* edit_;
    QToolButton* button_;
};

}  // namespace redirect::gui
