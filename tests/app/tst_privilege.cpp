// The console's start-up, which never needs root, in process: the commands it has others run
// (the demo's service directly or through pkexec, systemctl for the system service), the offer
// shown when no service answers and each of its choices, and the launcher's log of a failed
// command. (The demo's service and the real start-up as nobody: tst_privilege_demo; installed
// files: tst_privilege_install.)
#include <cerrno>

#include <unistd.h>

#include <QApplication>
#include <QFile>
#include <QFileInfo>
#include <QLabel>
#include <QPushButton>
#include <QScopeGuard>
#include <QTemporaryDir>
#include <QTimer>
#include <QtTest>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "command_line.h"
#include "privilege_test_support.h"
#include "service_offer.h"

using namespace redirect::gui;
using redirect::app::CommandLine;
using namespace redirect::test;

namespace {

struct Recorder {
    QList<QStringList> calls;
    Launcher launcher()
    {
        return [this](const QStringList& command) {
            calls << command;
            return true;
        };
    }
};

// What the scripted user saw and did.
struct Click {
    bool dialogSeen = false;
    bool buttonFound = false;
    QString message;
};

// Once the modal ServiceOfferDialog is on screen, clicks the button with that object name
// ("escape": presses Escape instead).
void clickWhenShown(const QString& buttonName, Click* click, int triesLeft = 500)
{
    QTimer::singleShot(10, [=] {
        auto* dialog = qobject_cast<ServiceOfferDialog*>(QApplication::activeModalWidget());
        if (!dialog || !dialog->isVisible()) {
            if (triesLeft > 0)
                clickWhenShown(buttonName, click, triesLeft - 1);
            return;
        }
        click->dialogSeen = true;
        click->message = dialog->findChild<QLabel*>(QStringLiteral("offerMessage"))->text();
        if (buttonName == QLatin1String("escape")) {
            click->buttonFound = true;
            QTest::keyClick(dialog, Qt::Key_Escape);
            return;
        }
        auto* button = dialog->findChild<QPushButton*>(buttonName);
        click->buttonFound = button != nullptr;
        if (button)
            button->click();
        else
            dialog->done(QDialog::Rejected);  // the test then fails on buttonFound
    });
}

CommandLine withSocket(const QString& path)
{
    CommandLine cl;
    cl.apiSocket = path.toStdString();
    return cl;
}

// The default logger's lines while it lives.
struct LogCapture {
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(200);
    LogCapture() { spdlog::default_logger()->sinks().push_back(sink); }
    ~LogCapture() { spdlog::default_logger()->sinks().pop_back(); }
    QString text() const
    {
        QStringList lines;
        for (const std::string& l : sink->last_formatted())
            lines << QString::fromStdString(l);
        return lines.join(QString());
    }
};

}  // namespace

class TestPrivilege : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void demoCommandOfAUserIsPkexecAndNothingElse_data();
    void demoCommandOfAUserIsPkexecAndNothingElse();
    void demoCommandOfAnAdministratorPassesRulesAndWorkers();
    void startServiceCommandIsSystemctl();
    void currentPrivilegesMatchIsAdministrator();
    void offerSaysWhatEachChoiceDoes();
    void eachButtonGivesItsChoice_data();
    void eachButtonGivesItsChoice();
    void escapeAndCloseMeanContinue();
    void noServiceShowsTheOffer_data();
    void noServiceShowsTheOffer();
    void aServiceAnsweringOrDemoSkipsTheOffer();
    void autoAnswerNeedsNoHuman();
    void launcherLogsAFailedCommand();

private:
    QTemporaryDir dir_;  // sockets and a status copy
};

void TestPrivilege::initTestCase()
{
    QVERIFY(dir_.isValid());
}

void TestPrivilege::demoCommandOfAUserIsPkexecAndNothingElse_data()
{
    QTest::addColumn<QString>("rules");
    QTest::addColumn<int>("workers");
    QTest::addColumn<QString>("cgroup");
    QTest::addColumn<QStringList>("dropped");
    QTest::newRow("none") << QString() << 0 << QString() << QStringList{};
    QTest::newRow("rules") << QStringLiteral("/root/.ssh/id_rsa") << 0 << QString()
                           << QStringList{QStringLiteral("--rules"), QStringLiteral("/root/.ssh/id_rsa")};
    QTest::newRow("all") << QStringLiteral("/tmp/a b.json") << 2 << QStringLiteral("/sys/fs/cgroup/x")
                         << QStringList{"--rules", "/tmp/a b.json", "--workers", "2", "--cgroup", "/sys/fs/cgroup/x"};
}

void TestPrivilege::demoCommandOfAUserIsPkexecAndNothingElse()
{
    QFETCH(QString, rules);
    QFETCH(int, workers);
    QFETCH(QString, cgroup);
    QFETCH(QStringList, dropped);
    CommandLine cl;
    cl.demo = true;
    cl.rules = rules.toStdString();
    cl.workers = workers;
    cl.cgroup = cgroup.toStdString();
    QStringList left{QStringLiteral("not cleared")};
    const QStringList cmd = demoServiceCommand(cl, false, &left);
    const QString service = QCoreApplication::applicationDirPath() + QStringLiteral("/redirect-consoled");
    QCOMPARE(cmd, (QStringList{QStringLiteral("pkexec"), service, QStringLiteral("--demo"), QStringLiteral("--for-console")}));
    QVERIFY(QFileInfo(cmd.at(1)).isAbsolute());
    QCOMPARE(left, dropped);
    const QString warning = droppedArgumentsWarning(left, false);
    if (dropped.isEmpty()) {
        QVERIFY(warning.isEmpty());
    } else {
        QVERIFY2(warning.contains(QStringLiteral("left out: ") + dropped.join(QLatin1Char(' '))), qPrintable(warning));
        QVERIFY2(warning.contains(QStringLiteral("polkit authorizes the program, not its arguments")), qPrintable(warning));
    }
}

void TestPrivilege::demoCommandOfAnAdministratorPassesRulesAndWorkers()
{
    CommandLine cl;
    cl.demo = true;
    cl.rules = "/etc/redirect-console/rules.json";
    cl.workers = 3;
    QStringList dropped{QStringLiteral("not cleared")};
    QCOMPARE(demoServiceCommand(cl, true, &dropped),
             (QStringList{serviceExecutable(), "--demo", "--for-console", "--rules", "/etc/redirect-console/rules.json", "--workers", "3"}));
    QCOMPARE(dropped, QStringList());
    QVERIFY(droppedArgumentsWarning(dropped, true).isEmpty());
    // The demo makes its own cgroup, administrator or not.
    cl.cgroup = "/sys/fs/cgroup/x";
    QCOMPARE(demoServiceCommand(cl, true, &dropped).mid(3).size(), 4);
    QCOMPARE(dropped, (QStringList{QStringLiteral("--cgroup"), QStringLiteral("/sys/fs/cgroup/x")}));
    QVERIFY(droppedArgumentsWarning(dropped, true).contains(QStringLiteral("own cgroup")));
    QCOMPARE(demoServiceCommand(CommandLine{}, true, nullptr), (QStringList{serviceExecutable(), "--demo", "--for-console"}));
}

void TestPrivilege::startServiceCommandIsSystemctl()
{
    QCOMPARE(startServiceCommand(), (QStringList{"systemctl", "start", "redirect-console.service"}));
}

void TestPrivilege::currentPrivilegesMatchIsAdministrator()
{
    const Privileges p = currentPrivileges();
    QCOMPARE(p.administrator, redirect::app::isAdministrator());
    QVERIFY2(p.user.contains(QStringLiteral("(uid %1)").arg(geteuid())), qPrintable(p.user));
    QCOMPARE(missingCapabilities(0), (QStringList{QStringLiteral("CAP_BPF"), QStringLiteral("CAP_NET_ADMIN"), QStringLiteral("CAP_SYS_ADMIN")}));
    QCOMPARE(missingCapabilities(~quint64{0}), QStringList());
    QCOMPARE(missingCapabilities((quint64{1} << 39) | (quint64{1} << 21)), QStringList{QStringLiteral("CAP_NET_ADMIN")});
}

void TestPrivilege::offerSaysWhatEachChoiceDoes()
{
    ServiceOfferDialog dialog(QStringLiteral("/run/x<y>/api.sock"), QStringLiteral("Connection refused"));
    auto* label = dialog.findChild<QLabel*>(QStringLiteral("offerMessage"));
    QVERIFY(label);
    QCOMPARE(label->text(), dialog.message());
    const QString text = label->text();
    for (const char* said : {"No Redirect Console service answers at <code>/run/x&lt;y&gt;/api.sock</code>",
                             "(Connection refused)", "never runs as root",
                             "<i>Start the service</i> asks systemd to start redirect-console.service",
                             "attaches to the service as soon as it answers",
                             "<i>Open the demo</i> starts a private service", "<i>Continue</i> opens the window",
                             "remote nodes can be added", "<i>Quit</i> starts nothing"})
        QVERIFY2(text.contains(QLatin1String(said)), qPrintable(QStringLiteral("[%1] not in %2").arg(QLatin1String(said), text)));

    const QList<QPushButton*> buttons = dialog.findChildren<QPushButton*>();
    QCOMPARE(buttons.size(), 4);
    const QMap<QString, QString> texts{{"startServiceButton", "Start the service"},
                                       {"openDemoButton", "Open the demo"},
                                       {"continueButton", "Continue"},
                                       {"quitButton", "Quit"}};
    for (QPushButton* b : buttons) {
        QVERIFY2(texts.contains(b->objectName()), qPrintable(b->objectName()));
        QCOMPARE(b->text(), texts.value(b->objectName()));
        QCOMPARE(b->isDefault(), b->objectName() == QLatin1String("startServiceButton"));
    }
}

void TestPrivilege::eachButtonGivesItsChoice_data()
{
    QTest::addColumn<QString>("button");
    QTest::addColumn<int>("choice");
    QTest::newRow("start") << QStringLiteral("startServiceButton") << int(ServiceChoice::StartService);
    QTest::newRow("demo") << QStringLiteral("openDemoButton") << int(ServiceChoice::OpenDemo);
    QTest::newRow("continue") << QStringLiteral("continueButton") << int(ServiceChoice::Continue);
    QTest::newRow("quit") << QStringLiteral("quitButton") << int(ServiceChoice::Quit);
}

void TestPrivilege::eachButtonGivesItsChoice()
{
    QFETCH(QString, button);
    QFETCH(int, choice);
    ServiceOfferDialog dialog(QStringLiteral("/nowhere.sock"));
    dialog.show();
    QVERIFY(QTest::qWaitForWindowExposed(&dialog));
    dialog.findChild<QPushButton*>(button)->click();
    QVERIFY(!dialog.isVisible());
    QCOMPARE(int(dialog.choice()), choice);
}

void TestPrivilege::escapeAndCloseMeanContinue()
{
    for (const bool escape : {true, false}) {
        ServiceOfferDialog dialog(QStringLiteral("/nowhere.sock"));
        dialog.show();
        QVERIFY(QTest::qWaitForWindowExposed(&dialog));
        if (escape)
            QTest::keyClick(&dialog, Qt::Key_Escape);
        else
            QVERIFY(dialog.close());
        QVERIFY(!dialog.isVisible());
        QCOMPARE(dialog.result(), int(QDialog::Rejected));
        QCOMPARE(dialog.choice(), ServiceChoice::Continue);
    }
    // And through the real decision: the window opens, nothing was started.
    Recorder rec;
    Click click;
    clickWhenShown(QStringLiteral("escape"), &click);
    QCOMPARE(decideStartUp(withSocket(dir_.filePath(QStringLiteral("absent.sock"))), rec.launcher()), ServiceChoice::Continue);
    QVERIFY(click.dialogSeen);
    QVERIFY(rec.calls.isEmpty());
}

void TestPrivilege::noServiceShowsTheOffer_data()
{
    QTest::addColumn<QString>("button");
    QTest::addColumn<int>("choice");
    QTest::addColumn<bool>("stale");
    QTest::newRow("start") << QStringLiteral("startServiceButton") << int(ServiceChoice::StartService) << false;
    QTest::newRow("demo") << QStringLiteral("openDemoButton") << int(ServiceChoice::OpenDemo) << false;
    QTest::newRow("continue") << QStringLiteral("continueButton") << int(ServiceChoice::Continue) << false;
    QTest::newRow("quit") << QStringLiteral("quitButton") << int(ServiceChoice::Quit) << false;
    QTest::newRow("socket of a dead service, start") << QStringLiteral("startServiceButton") << int(ServiceChoice::StartService) << true;
}

void TestPrivilege::noServiceShowsTheOffer()
{
    QFETCH(QString, button);
    QFETCH(int, choice);
    QFETCH(bool, stale);
    const QString socket = dir_.filePath(QStringLiteral("offer-%1.sock").arg(QTest::currentDataTag()).replace(' ', '-').replace(',', '-'));
    QFile::remove(socket);
    auto cleanup = qScopeGuard([&] { QFile::remove(socket); });
    if (stale)
        QCOMPARE(makeSocket(socket, false), 0);
    Recorder rec;
    Click click;
    clickWhenShown(button, &click);
    QCOMPARE(int(decideStartUp(withSocket(socket), rec.launcher())), choice);
    QVERIFY(click.dialogSeen);
    QVERIFY(click.buttonFound);
    QVERIFY2(click.message.contains(socket), qPrintable(click.message));
    QVERIFY2(click.message.contains(stale ? QStringLiteral("Connection refused") : QStringLiteral("No such file or directory")),
             qPrintable(click.message));
    if (choice == int(ServiceChoice::StartService))
        QCOMPARE(rec.calls, QList<QStringList>{startServiceCommand()});
    else
        QVERIFY(rec.calls.isEmpty());
}

void TestPrivilege::aServiceAnsweringOrDemoSkipsTheOffer()
{
    const QString socket = dir_.filePath(QStringLiteral("listening.sock"));
    const int fd = makeSocket(socket, true);
    QVERIFY(fd >= 0);
    auto cleanup = qScopeGuard([&] {
        ::close(fd);
        QFile::remove(socket);
    });
    for (const bool demo : {false, true}) {
        Recorder rec;
        Click click;
        clickWhenShown(QStringLiteral("quitButton"), &click, 20);
        CommandLine cl = withSocket(demo ? dir_.filePath(QStringLiteral("absent.sock")) : socket);
        cl.demo = demo;
        QCOMPARE(decideStartUp(cl, rec.launcher()), demo ? ServiceChoice::OpenDemo : ServiceChoice::Continue);
        QTest::qWait(400);  // longer than the clicker looks for a dialog
        QVERIFY(!click.dialogSeen);
        QVERIFY(rec.calls.isEmpty());
    }
    QString why;
    QVERIFY(serviceAnswers(socket.toStdString(), &why));
    QVERIFY(!serviceAnswers(dir_.filePath(QStringLiteral("absent.sock")).toStdString(), &why));
    QCOMPARE(why, QStringLiteral("No such file or directory"));
}

void TestPrivilege::autoAnswerNeedsNoHuman()
{
    const QMap<QByteArray, ServiceChoice> answers{{"start", ServiceChoice::StartService},
                                                  {"demo", ServiceChoice::OpenDemo},
                                                  {"continue", ServiceChoice::Continue},
                                                  {"quit", ServiceChoice::Quit}};
    for (auto it = answers.begin(); it != answers.end(); ++it) {
        qputenv("REDIRECT_SERVICE_AUTOANSWER", it.key());
        Recorder rec;
        const ServiceChoice choice = decideStartUp(withSocket(dir_.filePath(QStringLiteral("absent.sock"))), rec.launcher());
        qunsetenv("REDIRECT_SERVICE_AUTOANSWER");
        QCOMPARE(choice, it.value());
        QCOMPARE(rec.calls.size(), it.value() == ServiceChoice::StartService ? 1 : 0);
    }
}

void TestPrivilege::launcherLogsAFailedCommand()
{
    StopSignalsBlocked blocked;  // as in the console: its children must not inherit the mask
    LogCapture log;
    QVERIFY(launchDetached({QStringLiteral("/bin/sh"), QStringLiteral("-c"), QStringLiteral("echo 'no polkit agent' >&2; exit 4")}));
    QTRY_VERIFY2_WITH_TIMEOUT(log.text().contains(QStringLiteral("exit 4): no polkit agent")), qPrintable(log.text()), 20000);
    QVERIFY(!launchDetached({dir_.filePath(QStringLiteral("no-such-program"))}));
    QVERIFY2(log.text().contains(QStringLiteral("could not run ") + dir_.filePath(QStringLiteral("no-such-program"))),
             qPrintable(log.text()));
    const QString status = dir_.filePath(QStringLiteral("launched-status"));
    QVERIFY(launchDetached(maskReporter(status)));
    QTRY_VERIFY_WITH_TIMEOUT(log.text().contains(QStringLiteral(": done")), 20000);
    QCOMPARE(signalMaskOf(status), QByteArray("0000000000000000"));
}

QTEST_MAIN(TestPrivilege)
#include "tst_privilege.moc"
