#include "gui_main.h"

#include <QApplication>
#include <QSocketNotifier>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include <sys/signalfd.h>
#include <unistd.h>
#include <QPixmap>
#include <QSettings>
#include <QTemporaryDir>
#include <QTimer>

#include <spdlog/spdlog.h>

#include "node_client.h"
#include "engine_bridge.h"
#include "flow_model.h"
#include "log_sink.h"
#include "main_window.h"
#include "nodes_view.h"
#include "service_offer.h"
#include "rules.h"
#include "rules_model.h"

namespace redirect::gui {

namespace {

// SIGINT/SIGTERM close the windows and end the event loop, as closing the window does: the
// layout is saved (MainWindow::closeEvent) and the engine and the demo sandbox go down in order
// (the hooks would vanish anyway; the demo cgroup and web root would not). One during the service
// offer closes it (which alone would mean Continue) and marks the application kStopRequested, so
// the console ends there; one while the demo's service starts ends that wait
// (DemoService::waitReady); one at any other time waits in the signalfd for the next event loop.
constexpr char kStopRequested[] = "redirectStopRequested";

void quitOnSignals(QObject* parent)
{
    sigset_t stopSignals;
    sigemptyset(&stopSignals);
    sigaddset(&stopSignals, SIGINT);
    sigaddset(&stopSignals, SIGTERM);
    int fd = ::signalfd(-1, &stopSignals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        spdlog::warn("signalfd: {}; SIGINT and SIGTERM stay blocked, close the window to stop", std::strerror(errno));
        return;
    }
    auto* notifier = new QSocketNotifier(fd, QSocketNotifier::Read, parent);
    QObject::connect(notifier, &QSocketNotifier::activated, parent, [fd, parent] {
        signalfd_siginfo info{};
        if (::read(fd, &info, sizeof(info)) != static_cast<ssize_t>(sizeof(info)))
            return;
        spdlog::info("stopping on {}", info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        parent->setProperty(kStopRequested, true);
        // closeAllWindows() also answers a modal dialog's own loop, where quit() alone does nothing.
        QApplication::closeAllWindows();
        QApplication::quit();
    });
}

}  // namespace

int runGui(int argc, char** argv, const app::CommandLine& cl)
{
    QApplication application(argc, argv);
    quitOnSignals(&application);
    QApplication::setApplicationName("redirect-console");
    QApplication::setOrganizationName("Redirect Console");
    QApplication::setApplicationDisplayName("Redirect Console");

    // Screenshots show the defaults (column widths, panes), not what this user arranged and saved.
    QTemporaryDir screenshotSettings;
    if (!cl.screenshot.empty()) {
        QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, screenshotSettings.path());
        QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, screenshotSettings.path());
    }

    auto logSink = std::make_shared<LogSink>(5000);
    spdlog::default_logger()->sinks().push_back(logSink);

    // The console is a client, never root: it attaches to the local service (offering to start it
    // when none answers) or to the demo's private one (started through pkexec unless administrator).
    StartUp start = startUp(cl);
    if (start.exitCode < 0 && application.property(kStopRequested).toBool())
        start.exitCode = app::ExitOk;
    if (start.exitCode >= 0) {
        spdlog::default_logger()->sinks().pop_back();
        return start.exitCode;
    }
    if (!start.demo && !cl.rules.empty())
        spdlog::warn("--rules {} is not used: the console shows and edits the rules of the node it attaches to "
                     "(give the file to redirect-consoled, or use Rules > Import)",
                     cl.rules);

    int code = cl.screenshot.empty() ? app::ExitOk : app::ExitRuntimeError;  // until the screenshot is saved
    {
        FlowModel flows;
        RulesModel rulesModel;
        EngineBridge bridge(&flows, &rulesModel, logSink);
        QString error;
        bridge.addNode({start.nodeName, "unix:" + start.socket, {}, {}, {}}, &error);
        addRememberedNodes(bridge);
        MainWindow window(&flows, &rulesModel, &bridge, [&flows] {
            std::vector<engine::Flow> out;
            for (int r = 0; r < flows.rowCount(); ++r)
                if (auto f = flows.flowSummary(r))
                    out.push_back(*f);
            return out;
        });
        window.show();
        bridge.start(100);
        if (!cl.screenshot.empty()) {
            // Give the demo time to show flows, select a chain, then save the window and the details.
            QTimer::singleShot(start.demo ? 4500 : 1500, &window, [&] {
                window.selectRichestFlow();
                QTimer::singleShot(300, &window, [&] {
                    const QStringList saved = window.saveScreenshots(QString::fromStdString(cl.screenshot));
                    spdlog::info("screenshots: {}", saved.join(' ').toStdString());
                    code = saved.isEmpty() ? app::ExitRuntimeError : app::ExitOk;
                    QApplication::quit();
                });
            });
        } else if (cl.duration > 0) {
            QTimer::singleShot(static_cast<int>(cl.duration * 1000), &window, [] { QApplication::quit(); });
        }
        int rc = QApplication::exec();
        if (cl.screenshot.empty())
            code = rc == 0 ? app::ExitOk : app::ExitRuntimeError;
        bridge.stop();
    }
    start.demo.reset();
    spdlog::default_logger()->sinks().pop_back();
    return code;
}

}  // namespace redirect::gui
