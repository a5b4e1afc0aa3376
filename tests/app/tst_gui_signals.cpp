// The console with a window, stopped by SIGTERM or SIGINT (Ctrl+C in its terminal): it exits
// normally, saves its window layout and takes its demo service, with that one's cgroup and web
// root, with it. Runs the real redirect-console binary with --demo, as a user would, and looks only
// at what that pid made (the demo's private redirect-consoled is its child).
// Offscreen, and on X11 through a private Xvfb: there Qt's event thread starts inside the
// QApplication constructor, the thread a stop signal used to land on and kill the process.
#include <csignal>

#include <sys/types.h>
#include <unistd.h>

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QProcess>
#include <QScopeGuard>
#include <QSettings>
#include <QTemporaryDir>
#include <QThread>
#include <QtTest>

#include "callout_loader.h"
#include "callout_paths.h"

namespace {

const QString kConsole = QStringLiteral(REDIRECT_CONSOLE);

// Children of `pid` as (pid, comm, command line).
struct Proc {
    qint64 pid = 0;
    QByteArray comm;
    QList<QByteArray> args;
};

QList<Proc> childrenOf(qint64 pid)
{
    QList<Proc> out;
    const QStringList procs = QDir(QStringLiteral("/proc")).entryList(QDir::Dirs | QDir::NoDotAndDotDot);
    for (const QString& entry : procs) {
        bool isPid = false;
        const qint64 child = entry.toLongLong(&isPid);
        if (!isPid)
            continue;
        QFile stat(QStringLiteral("/proc/%1/stat").arg(entry));
        if (!stat.open(QIODevice::ReadOnly))
            continue;
        // "pid (comm) state ppid ...": the comm may hold spaces, so count from its closing parenthesis.
        const QByteArray text = stat.readAll();
        const QList<QByteArray> fields = text.mid(text.lastIndexOf(')') + 2).split(' ');
        if (fields.size() < 2 || fields[1].toLongLong() != pid)
            continue;
        QFile cmdline(QStringLiteral("/proc/%1/cmdline").arg(entry));
        if (!cmdline.open(QIODevice::ReadOnly))
            continue;
        out.append({child, text.mid(text.indexOf('(') + 1, text.lastIndexOf(')') - text.indexOf('(') - 1),
                    cmdline.readAll().split('\0')});
    }
    return out;
}

// The demo service the console `pid` started, 0 while there is none.
qint64 demoService(qint64 pid)
{
    for (const Proc& p : childrenOf(pid))
        if (p.comm == "redirect-consol")  // comm is cut to 15 bytes: redirect-consoled
            return p.pid;
    return 0;
}

// The web root (/tmp/redirect-demo-*) of the demo run by `pid`: its HTTP server child serves it.
QString demoWebRoot(qint64 pid)
{
    for (const Proc& p : childrenOf(pid)) {
        const qsizetype at = p.args.indexOf("--directory");
        if (p.args.contains("http.server") && at >= 0 && at + 1 < p.args.size())
            return QString::fromLocal8Bit(p.args[at + 1]);
    }
    return {};
}

// A private X server for one test: Xvfb picks a free display and says which on stdout.
class PrivateX {
public:
    ~PrivateX()
    {
        if (xvfb_.state() != QProcess::NotRunning) {
            xvfb_.terminate();
            if (!xvfb_.waitForFinished(5000)) {
                xvfb_.kill();
                xvfb_.waitForFinished(5000);
            }
        }
    }
    /// ":N", or empty with the reason in `error`.
    QString start(QString* error)
    {
        xvfb_.start(QStringLiteral("Xvfb"), {QStringLiteral("-displayfd"), QStringLiteral("1"), QStringLiteral("-nolisten"),
                                             QStringLiteral("tcp"), QStringLiteral("-screen"), QStringLiteral("0"),
                                             QStringLiteral("1280x800x24")});
        if (!xvfb_.waitForStarted(5000)) {
            *error = QStringLiteral("Xvfb (package xvfb, scripts/install-deps.sh): ") + xvfb_.errorString();
            return {};
        }
        QElapsedTimer t;
        t.start();
        while (!xvfb_.canReadLine() && t.elapsed() < 10000 && xvfb_.state() == QProcess::Running)
            xvfb_.waitForReadyRead(100);
        bool ok = false;
        const int display = xvfb_.readLine().trimmed().toInt(&ok);
        if (!ok)
            *error = QStringLiteral("Xvfb did not report a display: ") + QString::fromUtf8(xvfb_.readAllStandardError());
        return ok ? QStringLiteral(":%1").arg(display) : QString();
    }

private:
    QProcess xvfb_;
};

}  // namespace

class TstGuiSignals : public QObject {
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QVERIFY2(QFile::exists(kConsole), qPrintable(kConsole));
        QVERIFY2(::geteuid() == 0, "the demo needs root; run as root (CI does)");
    }

    void stopsInOrder_data()
    {
        QTest::addColumn<QString>("platform");
        QTest::addColumn<int>("signal");
        QTest::newRow("xcb SIGTERM") << "xcb" << int(SIGTERM);
        QTest::newRow("xcb SIGINT") << "xcb" << int(SIGINT);
        QTest::newRow("offscreen SIGTERM") << "offscreen" << int(SIGTERM);
    }

    void stopsInOrder()
    {
        QFETCH(QString, platform);
        QFETCH(int, signal);
        QTemporaryDir home;
        QVERIFY(home.isValid());
        PrivateX x;
        QString display = QStringLiteral(":no-such-display");  // offscreen never connects to it
        if (platform == QLatin1String("xcb")) {
            QString error;
            display = x.start(&error);
            QVERIFY2(!display.isEmpty(), qPrintable(error));
        }
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("QT_QPA_PLATFORM"), platform);
        env.insert(QStringLiteral("DISPLAY"), display);  // a display makes main() open the window
        env.remove(QStringLiteral("WAYLAND_DISPLAY"));
        env.remove(QStringLiteral("XAUTHORITY"));
        env.insert(QStringLiteral("HOME"), home.path());
        env.insert(QStringLiteral("XDG_CONFIG_HOME"), home.filePath(QStringLiteral("config")));
        env.insert(QStringLiteral("XDG_RUNTIME_DIR"), home.path());  // else Qt makes /tmp/runtime-root
        QProcess console;
        console.setProcessEnvironment(env);
        console.start(kConsole, {QStringLiteral("--demo")});
        QVERIFY2(console.waitForStarted(5000), qPrintable(console.errorString()));
        const qint64 pid = console.processId();
        qint64 service = 0;
        QString cgroup;
        QString webRoot;
        // Whatever happens below, nothing of this run stays: its process, cgroup and web root.
        auto cleanup = qScopeGuard([&] {
            if (console.state() != QProcess::NotRunning) {
                console.kill();
                console.waitForFinished(5000);
            }
            if (service > 0)
                ::kill(pid_t(service), SIGKILL);
            if (!webRoot.isEmpty())
                QDir(webRoot).removeRecursively();
            if (!cgroup.isEmpty())
                QDir().rmdir(cgroup);
        });

        // Up: the demo's servers run, the engine logged its redirectors (then the window opens).
        QByteArray output;
        QElapsedTimer t;
        t.start();
        while (t.elapsed() < 30000 && console.state() == QProcess::Running &&
               (webRoot.isEmpty() || !output.contains("redirector vendor-x"))) {
            console.waitForReadyRead(100);
            output += console.readAllStandardOutput() + console.readAllStandardError();
            if (service == 0 && (service = demoService(pid)) > 0)
                cgroup = QString::fromStdString(redirect::Callout::cgroup2Root()) +
                         QStringLiteral("/redirect-demo-%1").arg(service);
            if (webRoot.isEmpty() && service > 0)
                webRoot = demoWebRoot(service);
        }
        QVERIFY2(!webRoot.isEmpty() && output.contains("redirector vendor-x"),
                 qPrintable("the console did not come up within 30 s: " + QString::fromUtf8(output)));
        QVERIFY(QDir(cgroup).exists());
        QVERIFY(QDir(webRoot).exists());
        // The window is attached: its demo service counts one client watching flows (asked through
        // the API, as any client would).
        const QString socket = QStringLiteral(CALLOUT_RUN_DIR "/demo-console-%1.sock").arg(pid);
        QString status;
        for (int i = 0; i < 40 && !status.contains(QStringLiteral("\"clients\": 1")); ++i) {
            QProcess client;
            client.start(QStringLiteral("/usr/bin/python3"),
                         {QStringLiteral(SERVICE_TEST_DIR "/api_client.py"), QStringLiteral("--proto"),
                          QStringLiteral(API_PROTO), QStringLiteral("--socket"), socket, QStringLiteral("status")});
            client.waitForFinished(30000);
            status = QString::fromUtf8(client.readAllStandardOutput() + client.readAllStandardError());
            if (!status.contains(QStringLiteral("\"clients\": 1")))
                QThread::msleep(250);
        }
        QVERIFY2(status.contains(QStringLiteral("\"clients\": 1")), qPrintable("the window never attached: " + status));

        QCOMPARE(::kill(pid_t(pid), signal), 0);
        QVERIFY2(console.waitForFinished(20000), "the console did not stop within 20 s of the signal");
        output += console.readAllStandardOutput() + console.readAllStandardError();
        QVERIFY2(console.exitStatus() == QProcess::NormalExit,
                 qPrintable(QStringLiteral("killed by signal %1: %2").arg(console.exitCode()).arg(QString::fromUtf8(output))));
        QVERIFY2(console.exitCode() == 0, qPrintable(QString::fromUtf8(output)));
        QVERIFY2(!QDir(cgroup).exists(), qPrintable(cgroup + " was left behind"));
        QVERIFY2(::kill(pid_t(service), 0) != 0, "the demo service outlived the console");
        QVERIFY2(!QDir(webRoot).exists(), qPrintable(webRoot + " was left behind"));
        QSettings layout(home.filePath(QStringLiteral("config/Redirect Console/redirect-console.conf")),
                         QSettings::IniFormat);
        QVERIFY2(!layout.value(QStringLiteral("window/state")).toByteArray().isEmpty(), "the window layout was not saved");
    }
};

QTEST_GUILESS_MAIN(TstGuiSignals)
#include "tst_gui_signals.moc"
