#include "connect_dialog.h"

#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QSettings>
#include <QVBoxLayout>

namespace redirect::gui {

namespace {

const char* const kGroup = "nodes";

QString fileProblem(const QString& what, const std::string& path)
{
    const QString p = QString::fromStdString(path);
    if (p.isEmpty())
        return QObject::tr("the %1 is missing (remote nodes take mutual TLS only)").arg(what);
    QFileInfo info(p);
    if (!info.exists())
        return QObject::tr("the %1 %2 does not exist").arg(what, p);
    if (!info.isFile() || !info.isReadable())
        return QObject::tr("the %1 %2 cannot be read").arg(what, p);
    return {};
}

}  // namespace

QString endpointProblem(const client::NodeEndpoint& e)
{
    const QString name = QString::fromStdString(e.name);
    if (name.isEmpty() || name.contains(QRegularExpression(QStringLiteral("\\s"))))
        return QObject::tr("a node needs a name, without spaces");
    // HOST:PORT or [IPV6]:PORT; gRPC resolves the host.
    static const QRegularExpression address(QStringLiteral("^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):([0-9]{1,5})$"));
    const QRegularExpressionMatch m = address.match(QString::fromStdString(e.target));
    const int port = m.hasMatch() ? m.captured(2).toInt() : 0;
    if (port < 1 || port > 65535)
        return QObject::tr("the address must be HOST:PORT (port 1-65535; [IPv6]:PORT), not \"%1\"")
            .arg(QString::fromStdString(e.target));
    for (const auto& [what, path] : {std::pair{QObject::tr("CA certificate"), e.caCert},
                                     std::pair{QObject::tr("client certificate"), e.clientCert},
                                     std::pair{QObject::tr("client key"), e.clientKey}})
        if (QString problem = fileProblem(what, path); !problem.isEmpty())
            return problem;
    return {};
}

QList<client::NodeEndpoint> rememberedNodes(QSettings& settings)
{
    QList<client::NodeEndpoint> nodes;
    const int n = settings.beginReadArray(kGroup);
    for (int i = 0; i < n; ++i) {
        settings.setArrayIndex(i);
        nodes.append({settings.value("name").toString().toStdString(), settings.value("address").toString().toStdString(),
                      settings.value("ca").toString().toStdString(), settings.value("certificate").toString().toStdString(),
                      settings.value("key").toString().toStdString()});
    }
    settings.endArray();
    return nodes;
}

namespace {

void writeNodes(QSettings& settings, const QList<client::NodeEndpoint>& nodes)
{
    settings.remove(kGroup);
    settings.beginWriteArray(kGroup, static_cast<int>(nodes.size()));
    for (int i = 0; i < nodes.size(); ++i) {
        const client::NodeEndpoint& e = nodes[i];
        settings.setArrayIndex(i);
        settings.setValue("name", QString::fromStdString(e.name));
        settings.setValue("address", QString::fromStdString(e.target));
        settings.setValue("ca", QString::fromStdString(e.caCert));
        settings.setValue("certificate", QString::fromStdString(e.clientCert));
        settings.setValue("key", QString::fromStdString(e.clientKey));
    }
    settings.endArray();
    settings.sync();
}

}  // namespace

void rememberNode(QSettings& settings, const client::NodeEndpoint& endpoint)
{
    QList<client::NodeEndpoint> nodes = rememberedNodes(settings);
    bool replaced = false;
    for (client::NodeEndpoint& e : nodes)
        if (e.name == endpoint.name) {
            e = endpoint;
            replaced = true;
        }
    if (!replaced)
        nodes.append(endpoint);
    writeNodes(settings, nodes);
}

bool forgetNode(QSettings& settings, const QString& name)
{
    QList<client::NodeEndpoint> nodes = rememberedNodes(settings);
    const qsizetype before = nodes.size();
    nodes.removeIf([&](const client::NodeEndpoint& e) { return QString::fromStdString(e.name) == name; });
    if (nodes.size() == before)
        return false;
    writeNodes(settings, nodes);
    return true;
}

ConnectDialog::ConnectDialog(Add add, QWidget* parent) : QDialog(parent), add_(std::move(add))
{
    setObjectName("connectDialog");
    setWindowTitle(tr("Connect to node"));
    auto* layout = new QVBoxLayout(this);
    auto* help = new QLabel(tr("A remote node serves its API with mutual TLS (redirect-consoled --listen). Give the CA "
                               "that signed the node's certificate and a client certificate of yours signed by the "
                               "node's --tls-ca; its OU gives your right (redirect-view or redirect-admin)."));
    help->setWordWrap(true);
    layout->addWidget(help);
    auto* form = new QFormLayout;
    name_ = new QLineEdit;
    name_->setObjectName("nodeName");
    name_->setPlaceholderText(tr("e.g. gateway-1"));
    address_ = new QLineEdit;
    address_->setObjectName("nodeAddress");
    address_->setPlaceholderText(tr("HOST:PORT, e.g. 192.0.2.10:50051"));
    form->addRow(tr("Name"), name_);
    form->addRow(tr("Address"), address_);
    auto row = [&](const QString& label, const QString& objectName, QLineEdit** field) {
        *field = file(objectName, label);
        auto* line = new QHBoxLayout;
        auto* browse = new QPushButton(tr("Browse…"));
        QLineEdit* target = *field;
        connect(browse, &QPushButton::clicked, this, [this, target, label] {
            const QString path = QFileDialog::getOpenFileName(this, label, target->text(), tr("PEM (*.pem *.crt *.key);;All files (*)"));
            if (!path.isEmpty())
                target->setText(path);
        });
        line->addWidget(*field, 1);
        line->addWidget(browse);
        form->addRow(label, line);
    };
    row(tr("CA certificate"), "nodeCa", &ca_);
    row(tr("Client certificate"), "nodeCertificate", &cert_);
    row(tr("Client key"), "nodeKey", &key_);
    layout->addLayout(form);
    error_ = new QLabel;
    error_->setObjectName("connectError");
    error_->setWordWrap(true);
    error_->setStyleSheet("color: #b00020;");
    layout->addWidget(error_);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Connect"));
    connect(buttons, &QDialogButtonBox::accepted, this, &ConnectDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    layout->addWidget(buttons);
    resize(620, 0);
}

QLineEdit* ConnectDialog::file(const QString& objectName, const QString& title)
{
    auto* edit = new QLineEdit;
    edit->setObjectName(objectName);
    edit->setPlaceholderText(title + tr(" (PEM file)"));
    return edit;
}

client::NodeEndpoint ConnectDialog::endpoint() const
{
    return {name_->text().trimmed().toStdString(), address_->text().trimmed().toStdString(),
            ca_->text().trimmed().toStdString(), cert_->text().trimmed().toStdString(),
            key_->text().trimmed().toStdString()};
}

QString ConnectDialog::error() const { return error_->text(); }

void ConnectDialog::accept()
{
    const client::NodeEndpoint e = endpoint();
    QString problem = endpointProblem(e);
    if (problem.isEmpty() && add_ && !add_(e, &problem) && problem.isEmpty())
        problem = tr("the node was not added");
    if (!problem.isEmpty()) {
        error_->setText(problem);
        return;
    }
    QDialog::accept();
}

}  // namespace redirect::gui
