// What `cmake --install` ships for the console and its service: the polkit action that lets pkexec
// start the demo's service (and nothing else), where the service lands, the .desktop entry, the
// icon, the default rules, and the systemd unit (systemd-analyze verify and security).
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QXmlStreamReader>
#include <QtTest>

#include "service_offer.h"

using namespace redirect::gui;

namespace {

const QString kResources = QStringLiteral(REDIRECT_RESOURCES_DIR);

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

class TestPrivilegeInstall : public QObject {
    Q_OBJECT
private slots:
    void policyLetsPkexecStartOnlyTheDemoService();
    void installedServiceIsWherePolicyPoints();
    void desktopFileIsValid();
    void iconIsValidSvgAndInResources();
    void defaultRulesEnableNothing();
    void serviceUnitRunsTheHardenedService();
};

void TestPrivilegeInstall::policyLetsPkexecStartOnlyTheDemoService()
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
    QCOMPARE(actions, QStringList{QStringLiteral("org.redirectconsole.console.demo")});
    // Asked every time: a kept authorization would let any process of the user start a root
    // service for five minutes after one password.
    QCOMPARE(defaults.size(), 3);
    for (const QString& key : {QStringLiteral("allow_active"), QStringLiteral("allow_inactive"), QStringLiteral("allow_any")})
        QCOMPARE(defaults.value(key), QStringLiteral("auth_admin"));
    QVERIFY2(!xml.contains("auth_admin_keep"), "auth_admin_keep in the installed policy");
    // pkexec matches the program the console runs for its demo: the installed service, and only it.
    QCOMPARE(annotations.value(QStringLiteral("org.freedesktop.policykit.exec.path")), QStringLiteral(REDIRECT_INSTALLED_SERVICE));
    QCOMPARE(QFileInfo(QStringLiteral(REDIRECT_INSTALLED_SERVICE)).fileName(), QStringLiteral("redirect-consoled"));
    QVERIFY(QFileInfo(QStringLiteral(REDIRECT_INSTALLED_SERVICE)).isAbsolute());
    // The service opens no window: pkexec need not keep DISPLAY and XAUTHORITY for it.
    QCOMPARE(annotations.keys(), QStringList{QStringLiteral("org.freedesktop.policykit.exec.path")});
}

// `cmake --install` (of the service's and the shell's directories, into a DESTDIR) puts
// redirect-consoled where the policy's exec.path says, and the policy where polkitd reads it.
void TestPrivilegeInstall::installedServiceIsWherePolicyPoints()
{
    QTemporaryDir dest;
    QVERIFY(dest.isValid());
    for (const char* dir : {"app/service", "app/gui"}) {
        QProcess install;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("DESTDIR"), dest.path());
        install.setProcessEnvironment(env);
        install.setProcessChannelMode(QProcess::MergedChannels);
        install.start(QStringLiteral(REDIRECT_CMAKE),
                      {QStringLiteral("-P"), QStringLiteral(REDIRECT_BUILD_DIR "/%1/cmake_install.cmake").arg(QLatin1String(dir))});
        QVERIFY2(install.waitForFinished(120000), dir);
        QVERIFY2(install.exitStatus() == QProcess::NormalExit && install.exitCode() == 0, install.readAll().constData());
    }
    const QFileInfo service(dest.path() + QStringLiteral(REDIRECT_INSTALLED_SERVICE));
    QVERIFY2(service.isFile() && service.isExecutable(), qPrintable(service.filePath()));
    QDirIterator it(dest.path(), {QStringLiteral("org.redirectconsole.console.policy")}, QDir::Files, QDirIterator::Subdirectories);
    QVERIFY(it.hasNext());
    const QString policy = it.next();
    QVERIFY2(policy.endsWith(QStringLiteral("/polkit-1/actions/org.redirectconsole.console.policy")), qPrintable(policy));
    QCOMPARE(readAll(policy), readAll(QStringLiteral(REDIRECT_POLICY_FILE)));
}

void TestPrivilegeInstall::desktopFileIsValid()
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
    QCOMPARE(exec, QStringLiteral("redirect-console"));  // as the user: the console never runs as root
    QCOMPARE(keys.value(QStringLiteral("Icon")), QStringLiteral("redirect-console"));
    QCOMPARE(keys.value(QStringLiteral("Terminal")), QStringLiteral("false"));
    const QString categories = keys.value(QStringLiteral("Categories"));
    QVERIFY2(categories.endsWith(QLatin1Char(';')), qPrintable(categories));
    const QStringList list = categories.split(QLatin1Char(';'), Qt::SkipEmptyParts);
    for (const char* c : {"Network", "System", "Monitor"})
        QVERIFY2(list.contains(QLatin1String(c)), c);
}

void TestPrivilegeInstall::iconIsValidSvgAndInResources()
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
    // The offer registers the resources of the static library; the icon is the same file.
    ServiceOfferDialog dialog(QStringLiteral("/nowhere.sock"));
    QCOMPARE(readAll(QStringLiteral(":/icons/redirect-console.svg")), svg);
}

void TestPrivilegeInstall::defaultRulesEnableNothing()
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

void TestPrivilegeInstall::serviceUnitRunsTheHardenedService()
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
    // The service's default --history (/var/lib/redirect-console/history.sqlite) is writable.
    QCOMPARE(keys.value(QStringLiteral("StateDirectory")), QStringLiteral("redirect-console"));
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

QTEST_MAIN(TestPrivilegeInstall)
#include "tst_privilege_install.moc"
