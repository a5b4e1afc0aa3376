#include "gui_main.h"

#include <QApplication>
#include <QSocketNotifier>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QProcess>
#include <QThread>
#include <QPixmap>
#include <QTimer>

#include <spdlog/spdlog.h>

#include "callout_paths.h"
#include "node_client.h"
#include "engine_bridge.h"
#include "flow_model.h"
#include "log_sink.h"
#include "main_window.h"
#include "nodes_view.h"
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

// The demo's private service (redirect-consoled --demo), started by this console and attached to
// like any node. It dies with the console (PR_SET_PDEATHSIG), and is stopped (SIGTERM, bounded)
// when the window closes, so its sandbox is torn down in order.
class DemoService {
public:
    explicit DemoService(const app::CommandLine& cl)
        : socket_(QStringLiteral(CALLOUT_RUN_DIR "/demo-console-%1.sock").arg(QCoreApplication::applicationPid()))
    {
        QStringList args{QStringLiteral("--demo"), QStringLiteral("--api-socket"), socket_};
        if (!cl.rules.empty())
            args << QStringLiteral("--rules") << QString::fromStdString(cl.rules);
        if (cl.workers > 0)
            args << QStringLiteral("--workers") << QString::number(cl.workers);
        process_.setChildProcessModifier([] { ::prctl(PR_SET_PDEATHSIG, SIGTERM); });
        process_.setProcessChannelMode(QProcess::ForwardedChannels);
        process_.start(QCoreApplication::applicationDirPath() + QStringLiteral("/redirect-consoled"), args);
    }
    ~DemoService()
    {
        if (process_.state() == QProcess::NotRunning)
            return;
        process_.terminate();
        if (!process_.waitForFinished(15000))
            process_.kill();
        process_.waitForFinished(5000);
    }
    /// Waits (bounded) for its socket; false with the reason.
    bool waitReady(QString* why)
    {
        for (int i = 0; i < 300; ++i) {
            if (QFileInfo::exists(socket_))
                return true;
            if (process_.state() == QProcess::NotRunning) {
                *why = QStringLiteral("the demo service ended (exit %1)").arg(process_.exitCode());
                return false;
            }
            QThread::msleep(100);
        }
        *why = QStringLiteral("the demo service did not open %1 within 30 s").arg(socket_);
        return false;
    }
    QString socket() const { return socket_; }

private:
    QString socket_;
    QProcess process_;
};

int runGui(int argc, char** argv, const app::CommandLine& cl)
{
    QApplication application(argc, argv);
    quitOnSignals(&application);
    QApplication::setApplicationName("redirect-console");
    QApplication::setOrganizationName("Redirect Console");
    QApplication::setApplicationDisplayName("Redirect Console");

    auto logSink = std::make_shared<LogSink>(5000);
    spdlog::default_logger()->sinks().push_back(logSink);

    // The console is a client: it attaches to the local service, or to the demo's private one,
    // which needs administrator rights to load its callout.
    std::unique_ptr<DemoService> demo;
    std::string socket = cl.apiSocket;
    if (!cl.demo && !cl.rules.empty())
        spdlog::warn("--rules {} is not used: the console shows and edits the rules of the node it attaches to "
                     "(give the file to redirect-consoled, or use Rules > Import)",
                     cl.rules);
    if (cl.demo) {
        if (!ensureAdministrator(QApplication::arguments().mid(1)))
            return app::ExitNotAdministrator;
        demo = std::make_unique<DemoService>(cl);
        QString why;
        if (!demo->waitReady(&why)) {
            std::fprintf(stderr, "redirect-console: %s\n", qPrintable(why));
            return app::ExitRuntimeError;
        }
        socket = demo->socket().toStdString();
    }

    int code = cl.screenshot.empty() ? app::ExitOk : app::ExitRuntimeError;  // until the screenshot is saved
    {
        FlowModel flows;
        RulesModel rulesModel;
        EngineBridge bridge(&flows, &rulesModel, logSink);
        QString error;
        bridge.addNode({cl.demo ? "demo" : "local", "unix:" + socket, {}, {}, {}}, &error);
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
    demo.reset();
    spdlog::default_logger()->sinks().pop_back();
    return code;
}

}  // namespace redirect::gui
