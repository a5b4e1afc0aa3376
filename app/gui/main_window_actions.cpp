// The main window's actions: the menu bar (File, Capture, View, Help) and the toolbar share them,
// so a shortcut, a menu entry and a button are one action with one state.
#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QDateTimeEdit>
#include <QDesktopServices>
#include <QDialog>
#include <QDialogButtonBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QToolBar>
#include <QUrl>

#include "flow_filter_proxy.h"
#include "flow_model.h"
#include "main_window.h"
#include "nodes_view.h"
#include "report.h"
#include "report_view.h"

namespace redirect::gui {

namespace {

// The README as installed, else next to the sources of a build tree.
QUrl documentationUrl()
{
    for (const char* path : {REDIRECT_DOC_INSTALLED, REDIRECT_DOC_SOURCE})
        if (QFileInfo::exists(QString::fromUtf8(path)))
            return QUrl::fromLocalFile(QString::fromUtf8(path));
    return {};
}

QString filterSyntax()
{
    QStringList fields;
    for (const std::string& name : engine::FlowFilter::fieldNames())
        fields << QString::fromStdString(name);
    return QCoreApplication::translate(
               "MainWindow",
               "Words match any column. field:value matches one field: %1.\n\n"
               "pid, uid, port and flow take numbers; the others match a part of the text, in any case. "
               "A leading - excludes (-rule:bypass), \"quotes\" keep spaces. All words must match.\n\n"
               "Examples:\n  comm:curl port:443\n  verdict:direct -user:root\n  route:\"records missing\"\n"
               "  rule:web node:gw reason:reset")
        .arg(fields.join(QStringLiteral(", ")));
}

}  // namespace

void MainWindow::buildActions(QToolBar* toolbar)
{
    auto action = [this](const QString& text, const char* name) {
        auto* a = new QAction(text, this);
        a->setObjectName(QString::fromLatin1(name));
        return a;
    };

    // File
    auto* connectNode = action(tr("Connect to node…"), "connectNodeAction");
    connect(connectNode, &QAction::triggered, this, [this] {
        tabs_->setCurrentWidget(nodes_);
        nodes_->openConnectDialog();
    });
    auto* exportAction = action(tr("Export…"), "exportAction");
    exportAction->setShortcut(Qt::CTRL | Qt::Key_E);
    connect(exportAction, &QAction::triggered, this, [this] { exportDialog()->show(); });
    auto* quit = action(tr("Quit"), "quitAction");
    quit->setShortcut(QKeySequence::Quit);
    connect(quit, &QAction::triggered, this, &QWidget::close);

    // Capture
    pause_ = action(tr("Pause"), "pauseAction");
    pause_->setCheckable(true);
    pause_->setShortcut(Qt::Key_Space);
    pause_->setToolTip(tr("Stop updating the table (Space); updates are kept and applied on resume"));
    // Space pauses only while the flow table has focus: elsewhere it toggles checkboxes and buttons.
    pause_->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    flowView_->addAction(pause_);
    auto* resume = action(tr("Resume"), "resumeAction");
    resume->setEnabled(false);
    connect(resume, &QAction::triggered, pause_, [this] { pause_->setChecked(false); });
    connect(pause_, &QAction::toggled, this, [this, resume](bool on) {
        flows_->setFrozen(on);
        resume->setEnabled(on);
        pausedLabel_->setVisible(on);
        showPaused();
        setWindowTitle(on ? tr("Redirect Console — paused") : tr("Redirect Console"));
    });
    auto* clear = action(tr("Clear"), "clearAction");
    clear->setToolTip(tr("Forget the flows shown; open flows come back with their next update"));
    connect(clear, &QAction::triggered, this, [this] {
        flows_->clear();
        showDetails();
    });

    // View
    showDirect_ = action(tr("Show direct connections"), "showDirectAction");
    showDirect_->setCheckable(true);
    showDirect_->setToolTip(tr("Also list connections the callout sent direct: a bypass rule, no rule, or a "
                               "redirector passed over"));
    connect(showDirect_, &QAction::toggled, this, [this](bool on) {
        proxy_->setShowDirect(on);
        QSettings().setValue("flows/showDirect", on);
    });
    showDirect_->setChecked(QSettings().value("flows/showDirect", false).toBool());
    auto* panes = action(tr("Details panes"), "panesAction");
    panes->setCheckable(true);
    panes->setChecked(true);
    connect(panes, &QAction::toggled, tabs_, &QWidget::setVisible);

    // Help
    auto* syntax = action(tr("Filter syntax"), "filterSyntaxAction");
    connect(syntax, &QAction::triggered, this,
            [this] { QMessageBox::information(this, tr("Filter syntax"), filterSyntax()); });
    auto* docs = action(tr("Documentation"), "documentationAction");
    docs->setShortcut(QKeySequence::HelpContents);
    connect(docs, &QAction::triggered, this, [this] {
        QUrl url = documentationUrl();
        if (url.isEmpty() || !QDesktopServices::openUrl(url))
            QMessageBox::information(this, tr("Documentation"),
                                     tr("The README was not found at %1.").arg(QString::fromUtf8(REDIRECT_DOC_INSTALLED)));
    });
    auto* about = action(tr("About Redirect Console"), "aboutAction");
    connect(about, &QAction::triggered, this, [this] {
        QMessageBox::about(this, tr("About Redirect Console"),
                           tr("<b>Redirect Console %1</b><p>Cooperating local proxies, watched: WFP-style connection "
                              "redirection with redirect records on Linux (eBPF), and its console.</p>")
                               .arg(QString::fromLatin1(REDIRECT_VERSION)));
    });
    auto* aboutQt = action(tr("About Qt"), "aboutQtAction");
    connect(aboutQt, &QAction::triggered, qApp, &QApplication::aboutQt);

    auto* openReport = action(tr("Open report…"), "openReportAction");
    openReport->setShortcut(QKeySequence::Open);
    connect(openReport, &QAction::triggered, this, [this] { ReportView::chooseAndOpen(this); });
    auto* history = action(tr("History…"), "historyAction");
    history->setToolTip(tr("The selected node's recorded flows of a time range, in a window of their own"));
    connect(history, &QAction::triggered, this, [this] { openHistory(); });
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addActions({connectNode, history, openReport, exportAction});
    fileMenu_ = file;
    file->addSeparator();
    file->addAction(quit);
    QMenu* capture = menuBar()->addMenu(tr("&Capture"));
    capture->addActions({pause_, resume, clear});
    QMenu* view = menuBar()->addMenu(tr("&View"));
    view->addAction(showDirect_);
    QMenu* columns = view->addMenu(tr("Columns"));
    columns->addActions(flowView_->horizontalHeader()->actions());
    QMenu* paneMenu = view->addMenu(tr("Panes"));
    paneMenu->addActions({panes, toolbar->toggleViewAction()});
    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addActions({syntax, docs});
    help->addSeparator();
    help->addActions({about, aboutQt});

    toolbar->addActions({pause_, showDirect_, exportAction, connectNode});

    auto* focusFilter = new QAction(tr("Filter"), this);
    focusFilter->setShortcut(QKeySequence::Find);
    connect(focusFilter, &QAction::triggered, filter_, [this] {
        filter_->setFocus();
        filter_->selectAll();
    });
    addAction(focusFilter);
    auto* copy = new QAction(tr("Copy rows as CSV"), this);
    copy->setShortcut(QKeySequence::Copy);
    connect(copy, &QAction::triggered, this, [this] { QApplication::clipboard()->setText(selectedRowsCsv()); });
    addAction(copy);
}

void MainWindow::openHistory()
{
    QDialog dialog(this);
    dialog.setWindowTitle(tr("History of %1").arg(bridge_->selectedNode()));
    auto* form = new QFormLayout(&dialog);
    const QDateTime now = QDateTime::currentDateTime();
    auto* from = new QDateTimeEdit(now.addSecs(-3600));
    auto* to = new QDateTimeEdit(now);
    for (QDateTimeEdit* edit : {from, to}) {
        edit->setCalendarPopup(true);
        edit->setDisplayFormat(QStringLiteral("yyyy-MM-dd hh:mm:ss"));
    }
    auto* presets = new QHBoxLayout;
    for (auto [label, seconds] : {std::pair{tr("Last hour"), 3600}, {tr("Last 24 hours"), 86400}, {tr("Last 7 days"), 604800}}) {
        auto* b = new QPushButton(label);
        connect(b, &QPushButton::clicked, &dialog, [from, to, seconds = seconds] {
            to->setDateTime(QDateTime::currentDateTime());
            from->setDateTime(to->dateTime().addSecs(-seconds));
        });
        presets->addWidget(b);
    }
    form->addRow(presets);
    form->addRow(tr("From"), from);
    form->addRow(tr("To"), to);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Open | QDialogButtonBox::Cancel);
    connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    form->addRow(buttons);
    if (dialog.exec() != QDialog::Accepted)
        return;
    const int64_t ms = 1'000'000;
    ReportView::history(bridge_, from->dateTime().toMSecsSinceEpoch() * ms, to->dateTime().toMSecsSinceEpoch() * ms, this)
        ->show();
}

}  // namespace redirect::gui
