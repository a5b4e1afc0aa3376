// The administrator gate: the pkexec relaunch command, the dialog and its buttons, the real gate
// run as user nobody (offers the relaunch, starts nothing) and as root (starts), and the files
// `cmake --install` ships (polkit action, .desktop entry, icon, default rules, systemd unit).
#include <grp.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <QApplication>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QProcess>
#include <QPushButton>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTimer>
#include <QXmlStreamReader>
#include <QtTest>

#include "other_user.h"
#include "command_line.h"
#include "privilege.h"

using namespace redirect::gui;

namespace {

const QString kResources = QStringLiteral(REDIRECT_RESOURCES_DIR);
constexpr uid_t kNobody = 65534;

Privileges nonAdministrator()
{
    return Privileges{false, QStringLiteral("alice (uid 1000)"), {QStringLiteral("CAP_BPF"), QStringLiteral("CAP_SYS_ADMIN")}};
}

// What the scripted user saw and did.
struct Click {
    bool dialogSeen = false;
    bool buttonFound = false;
    QString message;
};

// Once the modal PrivilegeDialog is on screen, clicks the button with that object name.
void clickWhenShown(const QString& buttonName, Click* click, int triesLeft = 500)
{
    QTimer::singleShot(10, [=] {
        auto* dialog = qobject_cast<PrivilegeDialog*>(QApplication::activeModalWidget());
        if (!dialog || !dialog->isVisible()) {
            if (triesLeft > 0)
                clickWhenShown(buttonName, click, triesLeft - 1);
            return;
        }
        click->dialogSeen = true;
        click->message = dialog->findChild<QLabel*>(QStringLiteral("privilegeMessage"))->text();
        auto* button = dialog->findChild<QPushButton*>(buttonName);
        click->buttonFound = button != nullptr;
        if (button)
            button->click();
        else
            dialog->done(QDialog::Rejected);  // the test then fails on buttonFound
    });
}

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

struct Run {
    bool finished = false;
    int code = -1;
    QByteArray out;
    QByteArray err;
};

// Runs the probe with a clean environment, as `uid` (root or nobody).
Run runProbe(const QString& probe, const QStringList& args, uid_t uid, const QString& autoanswer, const QString& workDir)
{
    QProcessEnvironment env;
    env.insert(QStringLiteral("PATH"), QStringLiteral("/usr/local/bin:/usr/bin:/bin"));
    env.insert(QStringLiteral("HOME"), workDir);
    env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));
    env.insert(QStringLiteral("REDIRECT_PRIVILEGE_AUTOANSWER"), autoanswer);
    env.insert(QStringLiteral("REDIRECT_PRIVILEGE_DRYRUN"), QStringLiteral("1"));
    env = redirect::test::stagedEnvironment(env, QFileInfo(probe).absolutePath());
    QProcess p;
    p.setProcessEnvironment(env);
    p.setWorkingDirectory(workDir);
    if (uid != 0) {
        p.setChildProcessModifier([uid] {
            // Between fork and exec: drop every group, then the gid, then the uid.
            if (setgroups(0, nullptr) != 0 || setgid(uid) != 0 || setuid(uid) != 0)
                _exit(126);
        });
    }
    Run r;
    p.start(probe, args);
    if (!p.waitForStarted(10000)) {
        r.err = p.errorString().toUtf8();
        return r;
    }
    r.finished = p.waitForFinished(30000);
    if (!r.finished) {
        p.kill();
        p.waitForFinished(5000);
    }
    r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = p.readAllStandardOutput();
    r.err = p.readAllStandardError();
    return r;
}

QByteArray readAll(const QString& path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

// "Key=value" lines of the [Desktop Entry] group (or of every group for a unit file).
QMap<QString, QString> keyValues(const QByteArray& text, QStringList* groups)
{
    QMap<QString, QString> keys;
    for (const QByteArray& raw : text.split('\n')) {
        const QString line = QString::fromUtf8(raw).trimmed();
        if (line.isEmpty() || line.startsWith(QLatin1Char('#')))
            continue;
        if (line.startsWith(QLatin1Char('['))) {
            *groups << line;
            continue;
        }
        const qsizetype eq = line.indexOf(QLatin1Char('='));
        if (eq > 0)
            keys.insert(line.left(eq), line.mid(eq + 1));
    }
    return keys;
}

}  // namespace

class TestPrivilege : public QObject {
    Q_OBJECT
private slots:
    void relaunchCommandIsPkexecOfThisExecutable();
    void relaunchPassesNoPathsOrValues_data();
    void relaunchPassesNoPathsOrValues();
    void dialogSaysWhatIsMissing();
    void dialogNamesWhatTheRelaunchDrops();
    void currentPrivilegesMatchIsAdministrator();
    void administratorSkipsTheDialog();
    void relaunchCallsTheLauncherOnce();
    void quitNeverCallsTheLauncher();
    void escapeMeansQuit();
    void autoAnswerNeedsNoHuman();
    void probeAsNobodyOffersRelaunchAndStartsNothing_data();
    void probeAsNobodyOffersRelaunchAndStartsNothing();
    void probeAsRootStarts();
    void policyIsValidAndAllowsGui();
    void desktopFileIsValid();
    void iconIsValidSvgAndInResources();
    void defaultRulesEnableNothing();
    void serviceUnitRunsTheHardenedService();

private:
    QString probeCopy();
    QTemporaryDir probeDir_;
};

void TestPrivilege::relaunchCommandIsPkexecOfThisExecutable()
{
    const QStringList cmd = relaunchCommand({QStringLiteral("--demo")});
    QCOMPARE(cmd.size(), 3);
    QCOMPARE(cmd.at(0), QStringLiteral("pkexec"));
    QVERIFY2(QFileInfo(cmd.at(1)).isAbsolute(), qPrintable(cmd.at(1)));
    QCOMPARE(QFileInfo(cmd.at(1)).canonicalFilePath(), QFileInfo(QCoreApplication::applicationFilePath()).canonicalFilePath());
    QVERIFY(QFileInfo(cmd.at(1)).isExecutable());
    QCOMPARE(cmd.at(2), QStringLiteral("--demo"));
    QCOMPARE(relaunchCommand({}), (QStringList{QStringLiteral("pkexec"), relaunchExecutable()}));
}

void TestPrivilege::relaunchPassesNoPathsOrValues_data()
{
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QStringList>("kept");
    const QString jsonl = QStringLiteral("/etc/cron.d/x.jsonl");
    const QString report = QStringLiteral("/root/.bashrc.csv");
    const QString rules = QStringLiteral("/tmp/a b.json");
    const QString cgroup = QStringLiteral("/sys/fs/cgroup/unified");
    QTest::newRow("paths and --demo")
        << QStringList{"--jsonl", jsonl, "--demo", "--report", report, "--rules", rules, "--cgroup", cgroup}
        << QStringList{"--demo"};
    QTest::newRow("paths only") << QStringList{"--rules", rules, "--jsonl", jsonl, "--report", report, "--cgroup", cgroup}
                                << QStringList{};
    // A value that looks like a safe flag is still a value.
    QTest::newRow("value --demo") << QStringList{"--jsonl", "--demo", "--report", report} << QStringList{};
    QTest::newRow("free-form") << QStringList{"--instance", "x", "--screenshot", "/tmp/s.png", "--duration", "5",
                                              "--workers", "2", "--headless", "--check-rules", rules, "-platform", "xcb"}
                               << QStringList{};
}

void TestPrivilege::relaunchPassesNoPathsOrValues()
{
    QFETCH(QStringList, args);
    QFETCH(QStringList, kept);
    const QStringList cmd = relaunchCommand(args);
    QCOMPARE(cmd.mid(0, 2), (QStringList{QStringLiteral("pkexec"), relaunchExecutable()}));
    QCOMPARE(cmd.mid(2), kept);
    const RelaunchArguments split = relaunchArguments(args);
    QCOMPARE(split.kept, kept);
    QCOMPARE(split.kept.size() + split.dropped.size(), args.size());  // nothing lost without a word
    for (const QString& a : args) {
        if (a.startsWith(QLatin1Char('/')))
            QVERIFY2(!cmd.mid(2).join(QLatin1Char(' ')).contains(a), qPrintable(a + " reaches the root console"));
    }
}

void TestPrivilege::dialogSaysWhatIsMissing()
{
    PrivilegeDialog dialog(nonAdministrator());
    auto* label = dialog.findChild<QLabel*>(QStringLiteral("privilegeMessage"));
    QVERIFY(label);
    QCOMPARE(label->text(), dialog.message());
    const QString text = label->text();
    QVERIFY2(text.contains(QStringLiteral("must run as administrator")), qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("root, or a process with CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN")), qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("kernel callout")), qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("eBPF")), qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("running as alice (uid 1000), which is not root and lacks CAP_BPF and CAP_SYS_ADMIN")),
             qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("pkexec")), qPrintable(text));

    auto* relaunch = dialog.findChild<QPushButton*>(QStringLiteral("relaunchButton"));
    auto* quit = dialog.findChild<QPushButton*>(QStringLiteral("quitButton"));
    QVERIFY(relaunch);
    QVERIFY(quit);
    QCOMPARE(relaunch->text(), QStringLiteral("Relaunch as administrator"));
    QCOMPARE(quit->text(), QStringLiteral("Quit"));
    QVERIFY(relaunch->isDefault());
    QVERIFY(!quit->isDefault());
    // Exactly these two buttons: one clear choice.
    QCOMPARE(dialog.findChildren<QPushButton*>().size(), 2);
    QVERIFY(dialog.windowTitle().contains(QStringLiteral("administrator")));
}

void TestPrivilege::dialogNamesWhatTheRelaunchDrops()
{
    const QStringList args{QStringLiteral("--demo"), QStringLiteral("--jsonl"), QStringLiteral("/tmp/<x>.jsonl")};
    PrivilegeDialog dialog(nonAdministrator(), relaunchArguments(args).dropped);
    const QString text = dialog.message();
    QVERIFY2(text.contains(QStringLiteral("<code>--jsonl /tmp/&lt;x&gt;.jsonl</code>")), qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("left out")), qPrintable(text));
    // Nothing dropped, nothing said.
    QVERIFY(!PrivilegeDialog(nonAdministrator(), relaunchArguments({QStringLiteral("--demo")}).dropped)
                 .message()
                 .contains(QStringLiteral("left out")));
}

void TestPrivilege::currentPrivilegesMatchIsAdministrator()
{
    const Privileges p = currentPrivileges();
    QCOMPARE(p.administrator, redirect::app::isAdministrator());
    QVERIFY2(p.user.contains(QStringLiteral("(uid %1)").arg(geteuid())), qPrintable(p.user));
    QCOMPARE(missingCapabilities(0), (QStringList{QStringLiteral("CAP_BPF"), QStringLiteral("CAP_NET_ADMIN"), QStringLiteral("CAP_SYS_ADMIN")}));
    QCOMPARE(missingCapabilities(~quint64{0}), QStringList());
    QCOMPARE(missingCapabilities((quint64{1} << 39) | (quint64{1} << 21)), QStringList{QStringLiteral("CAP_NET_ADMIN")});
    QCOMPARE(missingCapabilities(quint64{1} << 12), (QStringList{QStringLiteral("CAP_BPF"), QStringLiteral("CAP_SYS_ADMIN")}));
    // The missing ones agree with capget(2), in the order the message names them.
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    QCOMPARE(syscall(SYS_capget, &header, data), 0L);
    QStringList expected;
    for (const auto& [bit, name] : {std::pair{CAP_BPF, "CAP_BPF"}, {CAP_NET_ADMIN, "CAP_NET_ADMIN"}, {CAP_SYS_ADMIN, "CAP_SYS_ADMIN"}})
        if (!(data[bit / 32].effective & (1u << (bit % 32))))
            expected << QLatin1String(name);
    QCOMPARE(p.missingCapabilities, expected);
}

void TestPrivilege::administratorSkipsTheDialog()
{
    Recorder rec;
    Click click;
    clickWhenShown(QStringLiteral("relaunchButton"), &click, 20);
    Privileges admin = nonAdministrator();
    admin.administrator = true;
    QVERIFY(ensureAdministrator({QStringLiteral("--demo")}, rec.launcher(), admin));
    QTest::qWait(400);  // longer than the clicker looks for a dialog
    QVERIFY(!click.dialogSeen);
    QVERIFY(rec.calls.isEmpty());
}

void TestPrivilege::relaunchCallsTheLauncherOnce()
{
    const QStringList args{QStringLiteral("--rules"), QStringLiteral("/etc/redirect-console/rules.json")};
    Recorder rec;
    Click click;
    clickWhenShown(QStringLiteral("relaunchButton"), &click);
    QVERIFY(!ensureAdministrator(args, rec.launcher(), nonAdministrator()));
    QVERIFY(click.dialogSeen);
    QVERIFY(click.buttonFound);
    QVERIFY2(click.message.contains(QStringLiteral("lacks CAP_BPF and CAP_SYS_ADMIN")), qPrintable(click.message));
    QVERIFY2(click.message.contains(QStringLiteral("--rules /etc/redirect-console/rules.json")), qPrintable(click.message));
    QCOMPARE(rec.calls.size(), 1);
    QCOMPARE(rec.calls.first(), (QStringList{QStringLiteral("pkexec"), relaunchExecutable()}));
}

void TestPrivilege::quitNeverCallsTheLauncher()
{
    Recorder rec;
    Click click;
    clickWhenShown(QStringLiteral("quitButton"), &click);
    QVERIFY(!ensureAdministrator({QStringLiteral("--demo")}, rec.launcher(), nonAdministrator()));
    QVERIFY(click.dialogSeen);
    QVERIFY(click.buttonFound);
    QVERIFY(rec.calls.isEmpty());
}

void TestPrivilege::escapeMeansQuit()
{
    Recorder rec;
    bool seen = false;
    QTimer::singleShot(50, [&] {
        QWidget* modal = QApplication::activeModalWidget();
        seen = qobject_cast<PrivilegeDialog*>(modal) != nullptr;
        if (modal)
            QTest::keyClick(modal, Qt::Key_Escape);
    });
    QVERIFY(!ensureAdministrator({}, rec.launcher(), nonAdministrator()));
    QVERIFY(seen);
    QVERIFY(rec.calls.isEmpty());
}

void TestPrivilege::autoAnswerNeedsNoHuman()
{
    for (const char* answer : {"relaunch", "quit"}) {
        qputenv("REDIRECT_PRIVILEGE_AUTOANSWER", answer);
        Recorder rec;
        const bool passed = ensureAdministrator({QStringLiteral("-x")}, rec.launcher(), nonAdministrator());
        qunsetenv("REDIRECT_PRIVILEGE_AUTOANSWER");
        QVERIFY(!passed);
        QCOMPARE(rec.calls.size(), qstrcmp(answer, "relaunch") == 0 ? 1 : 0);
        if (qstrcmp(answer, "relaunch") == 0)
            QCOMPARE(rec.calls.first(), relaunchCommand({QStringLiteral("-x")}));
    }
}

// The probe and its shared libraries in a directory nobody can read and execute (the build tree
// may not be: root's checkout in /root is 0700 on a fresh machine).
QString TestPrivilege::probeCopy()
{
    const QString target = probeDir_.filePath(QStringLiteral("privilege_probe"));
    if (QFile::exists(target))
        return target;
    if (!probeDir_.isValid())
        return {};
    return redirect::test::stageForOtherUser(QStringLiteral(PRIVILEGE_PROBE), probeDir_.path());
}

void TestPrivilege::probeAsNobodyOffersRelaunchAndStartsNothing_data()
{
    QTest::addColumn<QString>("answer");
    QTest::newRow("relaunch") << QStringLiteral("relaunch");
    QTest::newRow("quit") << QStringLiteral("quit");
}

void TestPrivilege::probeAsNobodyOffersRelaunchAndStartsNothing()
{
    QFETCH(QString, answer);
    if (geteuid() != 0)
        QSKIP("needs root to become nobody");
    const QString probe = probeCopy();
    QVERIFY2(!probe.isEmpty(), "could not copy the probe to a world-readable directory");
    const QString why = redirect::test::whyOtherUsersCannotReach(probe);
    QVERIFY2(why.isEmpty(), qPrintable(why));
    const QStringList args{QStringLiteral("--headless"), QStringLiteral("--rules"), QStringLiteral("/etc/redirect-console/rules.json")};
    const Run r = runProbe(probe, args, kNobody, answer, probeDir_.path());
    QVERIFY2(r.finished, r.err.constData());
    QVERIFY2(r.code == redirect::app::ExitNotAdministrator,
             qPrintable(QStringLiteral("exit %1, stdout %2, stderr %3").arg(r.code).arg(QString::fromUtf8(r.out), QString::fromUtf8(r.err))));
    QVERIFY2(!r.out.contains("STARTED"), r.out.constData());
    if (answer == QStringLiteral("relaunch")) {
        // The path and the flags root has no use for stay behind.
        const QByteArray expected = "RELAUNCH pkexec " + probe.toUtf8() + "\n";
        QCOMPARE(r.out, expected);
    } else {
        QCOMPARE(r.out, QByteArray());
    }
}

void TestPrivilege::probeAsRootStarts()
{
    if (geteuid() != 0)
        QSKIP("needs root");
    const QString probe = probeCopy();
    QVERIFY(!probe.isEmpty());
    const Run r = runProbe(probe, {QStringLiteral("--demo")}, 0, QStringLiteral("relaunch"), probeDir_.path());
    QVERIFY2(r.finished, r.err.constData());
    QCOMPARE(r.code, int(redirect::app::ExitOk));
    QCOMPARE(r.out, QByteArray("STARTED\n"));  // and no RELAUNCH line: no dialog for root
}

void TestPrivilege::policyIsValidAndAllowsGui()
{
    const QString policy = QStringLiteral(REDIRECT_POLICY_FILE);
    const QByteArray xml = readAll(policy);
    QVERIFY2(!xml.isEmpty(), qPrintable(policy));
    QVERIFY2(!xml.contains("@CMAKE_"), "the policy was not configured");

    const QString xmllint = QStandardPaths::findExecutable(QStringLiteral("xmllint"));
    if (!xmllint.isEmpty()) {
        QProcess p;
        p.start(xmllint, {QStringLiteral("--noout"), policy});
        QVERIFY(p.waitForFinished(10000));
        QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    }

    QXmlStreamReader reader(xml);
    QString root;
    QStringList actions;
    QMap<QString, QString> defaults;
    QMap<QString, QString> annotations;
    QString element;
    while (!reader.atEnd()) {
        reader.readNext();
        if (reader.isStartElement()) {
            element = reader.name().toString();
            if (root.isEmpty())
                root = element;
            if (element == QLatin1String("action"))
                actions << reader.attributes().value(QLatin1String("id")).toString();
            else if (element == QLatin1String("annotate")) {
                const QString key = reader.attributes().value(QLatin1String("key")).toString();
                annotations.insert(key, reader.readElementText().trimmed());
            }
            else if (element.startsWith(QLatin1String("allow_")))
                defaults.insert(element, reader.readElementText().trimmed());
        }
    }
    QVERIFY2(!reader.hasError(), qPrintable(reader.errorString()));
    QCOMPARE(root, QStringLiteral("policyconfig"));
    QCOMPARE(actions, QStringList{QStringLiteral("org.redirectconsole.console.run")});
    // Asked every time: a kept authorization would let any process of the user start the console
    // as root for five minutes after one password.
    QCOMPARE(defaults.size(), 3);
    for (const QString& key : {QStringLiteral("allow_active"), QStringLiteral("allow_inactive"), QStringLiteral("allow_any")})
        QCOMPARE(defaults.value(key), QStringLiteral("auth_admin"));
    QVERIFY2(!xml.contains("auth_admin_keep"), "auth_admin_keep in the installed policy");
    QCOMPARE(annotations.value(QStringLiteral("org.freedesktop.policykit.exec.path")),
             QStringLiteral(REDIRECT_INSTALLED_EXECUTABLE));
    QVERIFY(QFileInfo(QStringLiteral(REDIRECT_INSTALLED_EXECUTABLE)).isAbsolute());
    QCOMPARE(annotations.value(QStringLiteral("org.freedesktop.policykit.exec.allow_gui")), QStringLiteral("true"));
}

void TestPrivilege::desktopFileIsValid()
{
    const QString path = kResources + QStringLiteral("/redirect-console.desktop");
    const QString validator = QStandardPaths::findExecutable(QStringLiteral("desktop-file-validate"));
    if (!validator.isEmpty()) {
        QProcess p;
        p.start(validator, {path});
        QVERIFY(p.waitForFinished(10000));
        const QByteArray output = p.readAllStandardOutput() + p.readAllStandardError();
        QVERIFY2(p.exitCode() == 0 && !output.contains("error:"), output.constData());
    }
    QStringList groups;
    const QMap<QString, QString> keys = keyValues(readAll(path), &groups);
    QCOMPARE(groups, QStringList{QStringLiteral("[Desktop Entry]")});
    QCOMPARE(keys.value(QStringLiteral("Type")), QStringLiteral("Application"));
    QCOMPARE(keys.value(QStringLiteral("Name")), QStringLiteral("Redirect Console"));
    QVERIFY(!keys.value(QStringLiteral("Comment")).isEmpty());
    const QString exec = keys.value(QStringLiteral("Exec"));
    QVERIFY2(exec == QStringLiteral("redirect-console") || exec == QStringLiteral("pkexec redirect-console"), qPrintable(exec));
    QCOMPARE(keys.value(QStringLiteral("Icon")), QStringLiteral("redirect-console"));
    QCOMPARE(keys.value(QStringLiteral("Terminal")), QStringLiteral("false"));
    const QString categories = keys.value(QStringLiteral("Categories"));
    QVERIFY2(categories.endsWith(QLatin1Char(';')), qPrintable(categories));
    const QStringList list = categories.split(QLatin1Char(';'), Qt::SkipEmptyParts);
    for (const char* c : {"Network", "System", "Monitor"})
        QVERIFY2(list.contains(QLatin1String(c)), c);
}

void TestPrivilege::iconIsValidSvgAndInResources()
{
    const QByteArray svg = readAll(kResources + QStringLiteral("/icons/redirect-console.svg"));
    QVERIFY(!svg.isEmpty());
    QXmlStreamReader reader(svg);
    QString root;
    QString ns;
    QString viewBox;
    int elements = 0;
    while (!reader.atEnd()) {
        reader.readNext();
        if (reader.isStartElement()) {
            if (root.isEmpty()) {
                root = reader.name().toString();
                ns = reader.namespaceUri().toString();
                viewBox = reader.attributes().value(QLatin1String("viewBox")).toString();
            }
            ++elements;
        }
    }
    QVERIFY2(!reader.hasError(), qPrintable(reader.errorString()));
    QCOMPARE(root, QStringLiteral("svg"));
    QCOMPARE(ns, QStringLiteral("http://www.w3.org/2000/svg"));
    QCOMPARE(viewBox, QStringLiteral("0 0 64 64"));
    QVERIFY(elements > 3);
    // The dialog registers the resources of the static library; the icon is the same file.
    PrivilegeDialog dialog(nonAdministrator());
    QCOMPARE(readAll(QStringLiteral(":/icons/redirect-console.svg")), svg);
}

void TestPrivilege::defaultRulesEnableNothing()
{
    const QString path = kResources + QStringLiteral("/default-rules.json");
    QJsonParseError error;
    const QJsonDocument doc = QJsonDocument::fromJson(readAll(path), &error);
    QVERIFY2(error.error == QJsonParseError::NoError, qPrintable(error.errorString()));
    const QJsonArray rules = doc.object().value(QStringLiteral("rules")).toArray();
    QVERIFY(!rules.isEmpty());
    for (const QJsonValue& rule : rules) {
        // A rule without "enabled" is enabled; the example must enable nothing.
        const QJsonValue enabled = rule.toObject().value(QStringLiteral("enabled"));
        QVERIFY2(enabled.isBool() && !enabled.toBool(), qPrintable(rule.toObject().value(QStringLiteral("id")).toString()));
    }
    // And the console accepts it.
    QProcess p;
    p.start(QStringLiteral(REDIRECT_CONSOLE_BINARY), {QStringLiteral("--check-rules"), path});
    QVERIFY(p.waitForFinished(30000));
    QVERIFY2(p.exitCode() == 0, (p.readAllStandardOutput() + p.readAllStandardError()).constData());
}

void TestPrivilege::serviceUnitRunsTheHardenedService()
{
    const QByteArray unit = readAll(kResources + QStringLiteral("/redirect-console.service"));
    QStringList groups;
    const QMap<QString, QString> keys = keyValues(unit, &groups);
    QCOMPARE(groups, (QStringList{QStringLiteral("[Unit]"), QStringLiteral("[Service]"), QStringLiteral("[Install]")}));
    const QStringList exec = keys.value(QStringLiteral("ExecStart")).split(QLatin1Char(' '), Qt::SkipEmptyParts);
    QVERIFY(!exec.isEmpty());
    QCOMPARE(QFileInfo(exec.first()).fileName(), QStringLiteral("redirect-consoled"));
    QCOMPARE(exec.mid(1), (QStringList{QStringLiteral("--rules"), QStringLiteral("/etc/redirect-console/rules.json"),
                                       QStringLiteral("--jsonl"), QStringLiteral("/var/log/redirect-console/flows.jsonl")}));
    QCOMPARE(keys.value(QStringLiteral("Type")), QStringLiteral("notify"));
    QCOMPARE(keys.value(QStringLiteral("Restart")), QStringLiteral("on-failure"));
    QCOMPARE(keys.value(QStringLiteral("ProtectSystem")), QStringLiteral("strict"));
    QCOMPARE(keys.value(QStringLiteral("NoNewPrivileges")), QStringLiteral("yes"));
    QVERIFY(unit.contains("fails open"));

    // systemd's own check, on the unit as shipped but for the program's place (it checks that
    // ExecStart can run): the build's redirect-consoled instead of the installed one.
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString service = QFileInfo(QStringLiteral(REDIRECT_CONSOLE_BINARY)).dir().filePath(QStringLiteral("redirect-consoled"));
    QByteArray copy = unit;
    copy.replace("ExecStart=redirect-consoled ", "ExecStart=" + service.toUtf8() + " ");
    QFile out(dir.filePath(QStringLiteral("redirect-console.service")));
    QVERIFY(out.open(QIODevice::WriteOnly) && out.write(copy) == copy.size());
    out.close();
    QProcess verify;
    verify.setProcessChannelMode(QProcess::MergedChannels);
    verify.start(QStringLiteral("systemd-analyze"), {QStringLiteral("verify"), out.fileName()});
    QVERIFY2(verify.waitForFinished(60000), "systemd-analyze verify did not finish");
    const QByteArray said = verify.readAll();
    QVERIFY2(verify.exitStatus() == QProcess::NormalExit && verify.exitCode() == 0, said.constData());
    // It exits 0 on some findings; every line it prints about our unit is one.
    QVERIFY2(!said.contains("redirect-console.service"), said.constData());
    // Hardening kept: systemd's exposure score stays "OK" (4.7 when written; the old unit was 9.6).
    QProcess security;
    security.setProcessChannelMode(QProcess::MergedChannels);
    security.start(QStringLiteral("systemd-analyze"),
                   {QStringLiteral("security"), QStringLiteral("--offline=true"), QStringLiteral("--threshold=50"), out.fileName()});
    QVERIFY2(security.waitForFinished(60000), "systemd-analyze security did not finish");
    const QByteArray score = security.readAll();
    QVERIFY2(security.exitStatus() == QProcess::NormalExit && security.exitCode() == 0, score.right(400).constData());
}

QTEST_MAIN(TestPrivilege)
#include "tst_privilege.moc"
