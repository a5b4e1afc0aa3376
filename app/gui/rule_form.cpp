#include "rule_form.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QVBoxLayout>

#include <algorithm>
#include <cctype>

#include <netinet/in.h>

#include <nlohmann/json.hpp>

#include "rules_fields.h"

namespace redirect::gui {

namespace {

QString qs(const std::string& text) { return QString::fromStdString(text); }

std::string text(const QLineEdit* edit) { return edit->text().trimmed().toStdString(); }

// A rule id that the set does not use yet, from `base`'s letters.
std::string freeId(const engine::RuleSet& set, std::string base)
{
    for (char& c : base)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
            c = '-';
    if (base.empty())
        base = "rule";
    std::string id = base;
    for (int n = 2; std::any_of(set.rules.begin(), set.rules.end(), [&](const engine::RuleSpec& r) { return r.id == id; }); ++n)
        id = base + "-" + std::to_string(n);
    return id;
}

// "1.2.3.4:443" / "[::1]:80" -> ("1.2.3.4/32", "443")
std::pair<std::string, std::string> splitDestination(const std::string& destination)
{
    size_t colon = destination.rfind(':');
    if (colon == std::string::npos)
        return {};
    std::string host = destination.substr(0, colon), port = destination.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[')
        return {host.substr(1, host.size() - 2) + "/128", port};
    return {host + "/32", port};
}

}  // namespace

RuleForm::RuleForm(const engine::RuleSet& set, int editRow, QWidget* parent)
    : QDialog(parent), set_(set), editRow_(editRow)
{
    setObjectName("ruleForm");
    setWindowTitle(editRow < 0 ? tr("New rule") : tr("Edit rule"));
    auto* layout = new QVBoxLayout(this);
    auto* form = new QFormLayout;
    auto line = [&](const char* key, const QString& label, const QString& hint) {
        auto* edit = new QLineEdit;
        edit->setObjectName(QStringLiteral("rule-%1").arg(QLatin1String(key)));
        edit->setPlaceholderText(hint);
        form->addRow(label, edit);
        connect(edit, &QLineEdit::textChanged, this, &RuleForm::check);
        return edit;
    };
    id_ = line("id", tr("Id"), tr("letters, digits, - and _"));
    enabled_ = new QCheckBox(tr("Enabled"));
    enabled_->setChecked(true);
    form->addRow(QString(), enabled_);
    action_ = new QComboBox;
    action_->setObjectName("rule-action");
    action_->addItem(tr("redirect"), QStringLiteral("redirect"));
    action_->addItem(tr("bypass (go direct)"), QStringLiteral("bypass"));
    action_->addItem(tr("block (refuse with EPERM)"), QStringLiteral("block"));
    form->addRow(tr("Action"), action_);
    protocol_ = new QComboBox;
    protocol_->setObjectName("rule-protocol");
    protocol_->addItem(tr("TCP"), QStringLiteral("tcp"));
    protocol_->addItem(tr("UDP"), QStringLiteral("udp"));
    protocol_->addItem(tr("TCP and UDP"), QStringLiteral("any"));
    form->addRow(tr("Protocol"), protocol_);
    redirector_ = new QComboBox;
    redirector_->setObjectName("rule-redirector");
    for (const engine::RedirectorSpec& r : set_.redirectors)
        redirector_->addItem(qs(r.name == r.id ? r.id : r.name + " (" + r.id + ")"), qs(r.id));
    form->addRow(tr("Redirector"), redirector_);
    destination_ = line("destination", tr("Destination"), tr("any; or addresses and networks: 10.0.0.0/8, ::1"));
    ports_ = line("ports", tr("Ports"), tr("any; or 443, 8000-8100"));
    process_ = line("process", tr("Process"), tr("any; or a process name (up to 15 characters)"));
    uid_ = line("uid", tr("User"), tr("any; or a user name or uid"));
    cgroup_ = line("cgroup", tr("Cgroup"), tr("any; or a cgroup v2 path, e.g. /system.slice/x.service"));
    expires_ = line("expires", tr("Expires"), tr("never; or RFC 3339, e.g. 2026-12-01T18:00:00Z"));
    idle_ = line("idle_timeout", tr("UDP idle timeout"), tr("60 s; or seconds without a datagram, 1-86400"));
    layout->addLayout(form);
    error_ = new QLabel;
    error_->setObjectName("ruleFormError");
    error_->setWordWrap(true);
    error_->setStyleSheet("color: #b00020;");
    layout->addWidget(error_);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    buttons->button(QDialogButtonBox::Ok)->setObjectName("ruleFormOk");
    connect(buttons, &QDialogButtonBox::accepted, this, [this] {
        QString error;
        if (ruleSet(&error))
            accept();
        else
            error_->setText(error);
    });
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    layout->addWidget(buttons);
    connect(action_, &QComboBox::currentIndexChanged, this, [this] {
        redirector_->setEnabled(action_->currentData().toString() == QLatin1String("redirect"));
        check();
    });
    connect(redirector_, &QComboBox::currentIndexChanged, this, &RuleForm::check);
    connect(protocol_, &QComboBox::currentIndexChanged, this, [this] {
        idle_->setEnabled(protocol_->currentData().toString() != QLatin1String("tcp"));
        check();
    });
    connect(enabled_, &QCheckBox::toggled, this, &RuleForm::check);

    if (editRow_ >= 0 && size_t(editRow_) < set_.rules.size()) {
        const engine::RuleSpec& r = set_.rules[size_t(editRow_)];
        id_->setText(qs(r.id));
        enabled_->setChecked(r.enabled);
        action_->setCurrentIndex(static_cast<int>(r.action));  // in RuleAction's order
        redirector_->setCurrentIndex(redirector_->findData(qs(r.redirector)));
        setProtocol(r.protocol);
        idle_->setText(r.idleTimeoutS ? QString::number(*r.idleTimeoutS) : QString());
        QStringList nets;
        for (const engine::Cidr& c : r.destination)
            nets << qs(c.str());
        destination_->setText(nets.join(QStringLiteral(", ")));
        ports_->setText(qs(engine::fields::formatPorts(r.ports)));
        process_->setText(qs(r.process));
        uid_->setText(!r.user.empty() ? qs(r.user) : r.uid ? QString::number(*r.uid) : QString());
        cgroup_->setText(qs(r.cgroup));
        expires_->setText(r.expiresNs ? qs(engine::fields::formatTime(*r.expiresNs)) : QString());
    } else {
        id_->setText(qs(freeId(set_, "rule")));
    }
    idle_->setEnabled(protocol_->currentData().toString() != QLatin1String("tcp"));
    check();
}

void RuleForm::setProtocol(uint8_t protocol)
{
    protocol_->setCurrentIndex(protocol == IPPROTO_UDP ? 1 : protocol == 0 ? 2 : 0);
}

QLineEdit* RuleForm::field(const QString& key) const
{
    return findChild<QLineEdit*>(QStringLiteral("rule-%1").arg(key));
}

void RuleForm::prefill(const engine::Flow& flow, engine::RuleAction action)
{
    const bool redirect = action == engine::RuleAction::Redirect;
    action_->setCurrentIndex(redirect ? 0 : 1);
    auto [net, port] = splitDestination(flow.destination);
    destination_->setText(qs(net));
    ports_->setText(qs(port));
    process_->setText(qs(flow.comm));
    uid_->setText(!flow.user.empty() ? qs(flow.user) : QString::number(flow.uid));
    setProtocol(flow.protocol);
    for (const engine::Hop& hop : flow.hops)  // its first redirector, by name
        if (hop.redirectorId != 0) {
            for (int i = 0; i < redirector_->count(); ++i) {
                const engine::RedirectorSpec* spec = set_.findRedirector(redirector_->itemData(i).toString().toStdString());
                if (spec && spec->name == hop.redirector)
                    redirector_->setCurrentIndex(i);
            }
            break;
        }
    id_->setText(qs(freeId(set_, (redirect ? "redirect-" : "bypass-") + flow.comm + "-" + port)));
}

std::string RuleForm::ruleJson() const
{
    nlohmann::ordered_json rule;
    rule["id"] = text(id_);
    if (!enabled_->isChecked())
        rule["enabled"] = false;
    const std::string action = action_->currentData().toString().toStdString();
    rule["action"] = action;
    if (action == "redirect")
        rule["redirector"] = redirector_->currentData().toString().toStdString();
    const std::string protocol = protocol_->currentData().toString().toStdString();
    if (protocol != "tcp")  // absent means tcp, as in files written before UDP
        rule["protocol"] = protocol;
    if (!text(destination_).empty()) {
        nlohmann::json nets = nlohmann::json::array();
        for (const QString& part : destination_->text().split(QLatin1Char(','), Qt::SkipEmptyParts))
            nets.push_back(part.trimmed().toStdString());
        rule["destination"] = nets;
    }
    if (!text(ports_).empty())
        rule["ports"] = text(ports_);
    if (!text(process_).empty())
        rule["process"] = text(process_);
    if (!text(uid_).empty()) {
        bool number = false;
        const uint uid = uid_->text().trimmed().toUInt(&number);
        rule["uid"] = number ? nlohmann::json(uid) : nlohmann::json(text(uid_));
    }
    if (!text(cgroup_).empty())
        rule["cgroup"] = text(cgroup_);
    if (!text(expires_).empty())
        rule["expires"] = text(expires_);
    if (idle_->isEnabled() && !text(idle_).empty()) {
        // Not a number: passed as text, so the parser says what it wants.
        bool number = false;
        const uint seconds = idle_->text().trimmed().toUInt(&number);
        rule["idle_timeout"] = number ? nlohmann::json(seconds) : nlohmann::json(text(idle_));
    }
    return rule.dump();
}

std::optional<engine::RuleSet> RuleForm::ruleSet(QString* error) const
{
    // Through the rules file's parser: the form takes exactly what a file would.
    nlohmann::ordered_json doc = nlohmann::ordered_json::parse(engine::rulesToJson(set_));
    nlohmann::ordered_json rule = nlohmann::ordered_json::parse(ruleJson());
    auto& rules = doc["rules"];
    if (editRow_ >= 0 && size_t(editRow_) < rules.size())
        rules[size_t(editRow_)] = rule;
    else
        rules.insert(rules.begin(), rule);
    engine::RulesResult parsed = engine::parseRules(doc.dump());
    if (!parsed.ok()) {
        if (error)
            *error = qs(parsed.error.message);  // the line and column are of a text the user never saw
        return std::nullopt;
    }
    return parsed.rules;
}

void RuleForm::check()
{
    QString error;
    error_->setText(ruleSet(&error) ? QString() : error);
}

}  // namespace redirect::gui
