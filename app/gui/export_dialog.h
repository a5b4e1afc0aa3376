// Export of flows to CSV, JSON or an HTML report, all flows or the filtered
// view, with a time range; runs off the GUI thread with progress and cancel.
#pragma once

#include <QDialog>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "flow.h"

class QCheckBox;
class QComboBox;
class QDateTimeEdit;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QRadioButton;

namespace redirect::gui {

class ExportDialog : public QDialog {
    Q_OBJECT
public:
    /// `snapshot` is called on the GUI thread when an export starts; the writing runs on a thread.
    using Snapshot = std::function<std::vector<engine::Flow>()>;
    ExportDialog(Snapshot snapshot, QString viewFilter, QString scopeText, QWidget* parent = nullptr);
    ~ExportDialog() override;

    /// Start an export without user input (tests, scripts): path decides the format.
    bool startExport(const QString& path, bool filteredView, qint64 fromNs = 0, qint64 toNs = 0);
    bool isRunning() const { return worker_.joinable() && !done_; }
    void cancel() { cancel_ = true; }

signals:
    void progress(qulonglong done, qulonglong total);
    void exportFinished(bool ok, const QString& path, const QString& message);

private slots:
    void onExportClicked();
    void onProgress(qulonglong done, qulonglong total);
    void onFinished(bool ok, const QString& path, const QString& message);

private:
    void reject() override;

    Snapshot snapshot_;
    QString viewFilter_;
    QString scopeText_;
    QLineEdit* path_;
    QComboBox* format_;
    QRadioButton* all_;
    QRadioButton* filtered_;
    QCheckBox* limitTime_;
    QDateTimeEdit* from_;
    QDateTimeEdit* to_;
    QProgressBar* bar_;
    QLabel* status_;
    QPushButton* export_;
    std::thread worker_;
    std::atomic<bool> cancel_{false};
    std::atomic<bool> done_{false};
};

}  // namespace redirect::gui
