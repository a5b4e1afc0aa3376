#include "export_dialog.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDateTimeEdit>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHostInfo>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QVBoxLayout>

#include "output_file.h"
#include "redirector.h"
#include "report.h"

namespace redirect::gui {

ExportDialog::ExportDialog(Snapshot snapshot, QString viewFilter, QString scopeText, QWidget* parent)
    : QDialog(parent), snapshot_(std::move(snapshot)), viewFilter_(std::move(viewFilter)), scopeText_(std::move(scopeText))
{
    setWindowTitle(tr("Export flows"));
    setObjectName("exportDialog");
    auto* form = new QFormLayout;
    path_ = new QLineEdit;
    path_->setObjectName("exportPath");
    auto* browse = new QPushButton(tr("Browse…"));
    auto* pathRow = new QHBoxLayout;
    pathRow->addWidget(path_);
    pathRow->addWidget(browse);
    form->addRow(tr("File:"), pathRow);
    format_ = new QComboBox;
    format_->setObjectName("exportFormat");
    format_->addItems({tr("CSV (.csv)"), tr("JSON (.json)"), tr("HTML report (.html)")});
    form->addRow(tr("Format:"), format_);
    all_ = new QRadioButton(tr("All flows"));
    all_->setObjectName("exportAll");
    filtered_ = new QRadioButton(viewFilter_.isEmpty() ? tr("Filtered view (no filter set)")
                                                       : tr("Filtered view: %1").arg(viewFilter_));
    filtered_->setObjectName("exportFiltered");
    (viewFilter_.isEmpty() ? all_ : filtered_)->setChecked(true);
    auto* scope = new QVBoxLayout;
    scope->addWidget(all_);
    scope->addWidget(filtered_);
    form->addRow(tr("Flows:"), scope);
    limitTime_ = new QCheckBox(tr("Only flows active between"));
    from_ = new QDateTimeEdit(QDateTime::currentDateTime().addSecs(-3600));
    to_ = new QDateTimeEdit(QDateTime::currentDateTime().addSecs(3600));
    for (auto* e : {from_, to_}) {
        e->setDisplayFormat("yyyy-MM-dd HH:mm:ss");
        e->setEnabled(false);
    }
    connect(limitTime_, &QCheckBox::toggled, from_, &QWidget::setEnabled);
    connect(limitTime_, &QCheckBox::toggled, to_, &QWidget::setEnabled);
    auto* range = new QHBoxLayout;
    range->addWidget(limitTime_);
    range->addWidget(from_);
    range->addWidget(new QLabel(tr("and")));
    range->addWidget(to_);
    form->addRow(tr("Time:"), range);
    bar_ = new QProgressBar;
    bar_->setObjectName("exportProgress");
    status_ = new QLabel;
    status_->setObjectName("exportStatus");
    auto* buttons = new QDialogButtonBox;
    export_ = buttons->addButton(tr("Export"), QDialogButtonBox::AcceptRole);
    export_->setObjectName("exportButton");
    auto* cancel = buttons->addButton(QDialogButtonBox::Cancel);
    cancel->setObjectName("cancelButton");
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(bar_);
    layout->addWidget(status_);
    layout->addWidget(buttons);

    connect(browse, &QPushButton::clicked, this, [this] {
        QString file = QFileDialog::getSaveFileName(this, tr("Export flows"), path_->text(),
                                                    tr("CSV (*.csv);;JSON (*.json);;HTML (*.html)"));
        if (!file.isEmpty())
            path_->setText(file);
    });
    connect(format_, &QComboBox::currentIndexChanged, this, [this](int index) {
        static const char* ext[] = {".csv", ".json", ".html"};
        QString p = path_->text();
        int dot = p.lastIndexOf('.');
        if (!p.isEmpty())
            path_->setText((dot > p.lastIndexOf('/') ? p.left(dot) : p) + ext[index]);
    });
    connect(export_, &QPushButton::clicked, this, &ExportDialog::onExportClicked);
    connect(cancel, &QPushButton::clicked, this, &ExportDialog::reject);
    connect(this, &ExportDialog::progress, this, &ExportDialog::onProgress, Qt::QueuedConnection);
    connect(this, &ExportDialog::exportFinished, this, &ExportDialog::onFinished, Qt::QueuedConnection);
}

ExportDialog::~ExportDialog()
{
    cancel_ = true;
    if (worker_.joinable())
        worker_.join();
}

void ExportDialog::reject()
{
    if (isRunning()) {
        cancel_ = true;  // the worker stops at its next progress call; onFinished closes
        status_->setText(tr("Cancelling…"));
        return;
    }
    QDialog::reject();
}

void ExportDialog::onExportClicked()
{
    qint64 from = 0, to = 0;
    if (limitTime_->isChecked()) {
        from = from_->dateTime().toMSecsSinceEpoch() * 1000000;
        to = to_->dateTime().toMSecsSinceEpoch() * 1000000;
    }
    startExport(path_->text(), filtered_->isChecked(), from, to);
}

bool ExportDialog::startExport(const QString& path, bool filteredView, qint64 fromNs, qint64 toNs)
{
    auto format = engine::reportFormatForPath(path.toStdString());
    if (path.isEmpty() || !format) {
        status_->setText(tr("Choose a file ending in .csv, .json or .html"));
        return false;
    }
    if (isRunning())
        return false;
    if (worker_.joinable())
        worker_.join();
    std::string targetError;
    if (!engine::checkWholeFileTarget(path.toStdString(), &targetError)) {
        status_->setText(tr("Cannot export: %1").arg(QString::fromStdString(targetError)));
        return false;
    }
    std::string filter = filteredView ? viewFilter_.toStdString() : std::string();
    std::string error;
    if (!filter.empty() && !engine::FlowFilter::parse(filter, &error)) {
        status_->setText(tr("Filter: %1").arg(QString::fromStdString(error)));
        return false;
    }
    export_->setEnabled(false);
    cancel_ = false;
    done_ = false;
    status_->setText(tr("Exporting…"));
    engine::ReportScope scope{filter, fromNs, toNs};
    engine::ReportMeta meta{"Redirect Console " REDIRECT_VERSION, engine::wallNowNs(),
                            (filteredView && !filter.empty() ? "filter \"" + filter + "\", " : std::string("all flows, ")) +
                                scopeText_.toStdString(),
                            QHostInfo::localHostName().toStdString()};
    // Taken here, on the GUI thread: the flows come from the console's model, which only this
    // thread may read. Formatting and writing, the slow part, run on the worker.
    worker_ = std::thread([this, path, format, scope, meta, flows = snapshot_()] {
        std::string writeError;
        // Whole or not at all: a cancelled or failed export leaves the file that was there.
        bool ok = engine::writeWholeFile(
            path.toStdString(),
            [&](std::ostream& out) {
                return engine::writeReport(out, *format, flows, scope, meta, [this](size_t done, size_t total) {
                    emit progress(done, total);
                    return !cancel_.load();
                });
            },
            &writeError);
        QString message = ok        ? tr("Exported to %1").arg(path)
                          : cancel_ ? tr("Cancelled")
                                    : tr("Export failed: %1").arg(QString::fromStdString(writeError));
        done_ = true;
        emit exportFinished(ok, path, message);
    });
    return true;
}

void ExportDialog::onProgress(qulonglong done, qulonglong total)
{
    bar_->setMaximum(static_cast<int>(std::max<qulonglong>(total, 1)));
    bar_->setValue(static_cast<int>(done));
}

void ExportDialog::onFinished(bool ok, const QString&, const QString& message)
{
    status_->setText(message);
    export_->setEnabled(true);
    if (cancel_ && !ok)
        QDialog::reject();
}

}  // namespace redirect::gui
