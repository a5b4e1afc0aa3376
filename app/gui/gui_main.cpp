#include "gui_main.h"

#include <QApplication>
#include <QSocketNotifier>

#include <cerrno>
#include <csignal>
#include <cstring>

#include <sys/signalfd.h>
#include <unistd.h>
#include <QDir>
#include <QPixmap>
#include <QTimer>

#include <spdlog/spdlog.h>

#include "session.h"
#include "engine_bridge.h"
#include "flow_model.h"
#include "log_sink.h"
#include "main_window.h"
#include "privilege.h"
#include "rules.h"
#include "rules_model.h"

namespace redirect::gui {

namespace {

// SIGINT/SIGTERM close the windows and end the event loop, as closing the window does: the
// layout is saved (MainWindow::closeEvent) and the engine and the demo sandbox go down in order
// (the hooks would vanish anyway; the demo cgroup and web root would not). A signal that comes
// before the event loop runs (privilege dialog, demo start-up) waits in the signalfd until it does.
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
    QObject::connect(notifier, &QSocketNotifier::activated, parent, [fd] {
        signalfd_siginfo info{};
        if (::read(fd, &info, sizeof(info)) != static_cast<ssize_t>(sizeof(info)))
            return;
        spdlog::info("stopping on {}", info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
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
    // Before anything exists: no engine, no callout, no sandbox without administrator rights.
    if (!ensureAdministrator(QApplication::arguments().mid(1)))
        return app::ExitNotAdministrator;

    auto logSink = std::make_shared<LogSink>(5000);
    spdlog::default_logger()->sinks().push_back(logSink);

    app::Session session;
    if (int code = session.start(cl))
        return code;
    engine::Engine* raw = session.engine.get();

    int code = cl.screenshot.empty() ? app::ExitOk : app::ExitRuntimeError;  // until the screenshot is saved
    {
        FlowModel flows;
        RulesModel rulesModel;
        EngineBridge bridge(*raw, &flows, &rulesModel, logSink);
        MainWindow window(&flows, &rulesModel, &bridge, [raw] { return raw->snapshot(); }, raw);
        window.show();
        bridge.start(100);
        if (!cl.screenshot.empty()) {
            // Give the demo time to show flows, select a chain, then save the window and the details.
            QTimer::singleShot(cl.demo ? 4500 : 1500, &window, [&] {
                window.selectRichestFlow();
                QTimer::singleShot(300, &window, [&] {
                    QString path = QString::fromStdString(cl.screenshot);
                    bool ok = window.grab().save(path);
                    QString details = path.left(path.lastIndexOf('.')) + "-details.png";
                    ok = window.tabs()->grab().save(details) && ok;
                    spdlog::info("screenshots {} and {}: {}", path.toStdString(), details.toStdString(),
                                 ok ? "saved" : "FAILED");
                    code = ok ? app::ExitOk : app::ExitRuntimeError;
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
    session.stop();
    spdlog::default_logger()->sinks().pop_back();
    return code;
}

}  // namespace redirect::gui
