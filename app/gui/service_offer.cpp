#include "service_offer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <QDialogButtonBox>
#include <QHBoxLayout>
#include <QIcon>
#include <QLabel>
#include <QPushButton>
#include <QStyle>
#include <QTimer>
#include <QVBoxLayout>

#include <spdlog/spdlog.h>

// Resources of a static library must be registered explicitly, outside any namespace.
static void initRedirectResources()
{
    Q_INIT_RESOURCE(resources);
}

namespace redirect::gui {

namespace {

QString buildMessage(const QString& socketPath, const QString& reason)
{
    return QStringLiteral(
               "<p><b>No Redirect Console service answers at <code>%1</code></b>%2.</p>"
               "<p>The console shows and changes what a service (redirect-consoled) does; it runs none "
               "itself and never runs as root.</p>"
               "<p><i>Start the service</i> asks systemd to start redirect-console.service (polkit asks "
               "for an administrator password); the window opens and attaches to the service as soon as "
               "it answers.<br>"
               "<i>Open the demo</i> starts a private service for this window only, in a sandbox with "
               "sample traffic (pkexec asks for an administrator password).<br>"
               "<i>Continue</i> opens the window without a local service: the local node stays "
               "connecting, and remote nodes can be added.<br>"
               "<i>Quit</i> starts nothing.</p>")
        .arg(socketPath.toHtmlEscaped(), reason.isEmpty() ? QString() : QStringLiteral(" (%1)").arg(reason.toHtmlEscaped()));
}

}  // namespace

ServiceOfferDialog::ServiceOfferDialog(const QString& socketPath, const QString& reason, QWidget* parent)
    : QDialog(parent)
{
    initRedirectResources();
    setObjectName(QStringLiteral("serviceOfferDialog"));
    setWindowTitle(QStringLiteral("Redirect Console: no service"));
    setWindowIcon(QIcon(QStringLiteral(":/icons/redirect-console.svg")));
    setModal(true);

    auto* icon = new QLabel(this);
    const int size = style()->pixelMetric(QStyle::PM_MessageBoxIconSize, nullptr, this);
    icon->setPixmap(style()->standardIcon(QStyle::SP_MessageBoxQuestion, nullptr, this).pixmap(size, size));
    icon->setAlignment(Qt::AlignTop);

    message_ = new QLabel(buildMessage(socketPath, reason), this);
    message_->setObjectName(QStringLiteral("offerMessage"));
    message_->setTextFormat(Qt::RichText);
    message_->setWordWrap(true);
    message_->setMinimumWidth(460);

    auto* buttons = new QDialogButtonBox(this);
    const struct {
        const char* text;
        const char* name;
        ServiceChoice choice;
    } kButtons[] = {{"Start the service", "startServiceButton", ServiceChoice::StartService},
                    {"Open the demo", "openDemoButton", ServiceChoice::OpenDemo},
                    {"Continue", "continueButton", ServiceChoice::Continue},
                    {"Quit", "quitButton", ServiceChoice::Quit}};
    for (const auto& b : kButtons) {
        QPushButton* button = buttons->addButton(QString::fromLatin1(b.text), QDialogButtonBox::ActionRole);
        button->setObjectName(QString::fromLatin1(b.name));
        const bool isDefault = b.choice == ServiceChoice::StartService;
        button->setDefault(isDefault);
        button->setAutoDefault(isDefault);
        connect(button, &QPushButton::clicked, this, [this, choice = b.choice] { choose(choice); });
    }
    // Escape and the window's close button mean Continue: the window still opens, nothing starts.
    connect(this, &QDialog::rejected, this, [this] { choice_ = ServiceChoice::Continue; });

    auto* row = new QHBoxLayout;
    row->addWidget(icon);
    row->addWidget(message_, 1);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(row);
    layout->addWidget(buttons);
}

void ServiceOfferDialog::choose(ServiceChoice choice)
{
    choice_ = choice;
    accept();  // not reject(): that one means Continue
}

QString ServiceOfferDialog::message() const
{
    return message_->text();
}

void ServiceOfferDialog::showEvent(QShowEvent* event)
{
    QDialog::showEvent(event);
    if (autoAnswered_)
        return;
    const QByteArray answer = qgetenv("REDIRECT_SERVICE_AUTOANSWER");
    const char* name = answer == "start"      ? "startServiceButton"
                       : answer == "demo"     ? "openDemoButton"
                       : answer == "continue" ? "continueButton"
                       : answer == "quit"     ? "quitButton"
                                              : nullptr;
    auto* button = name ? findChild<QPushButton*>(QString::fromLatin1(name)) : nullptr;
    if (!button)
        return;
    autoAnswered_ = true;
    QTimer::singleShot(0, button, &QPushButton::click);
}

bool serviceAnswers(const std::string& socketPath, QString* why)
{
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socketPath.empty() || socketPath.size() >= sizeof(address.sun_path)) {
        *why = QStringLiteral("not a usable socket path");
        return false;
    }
    std::memcpy(address.sun_path, socketPath.c_str(), socketPath.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = QString::fromLocal8Bit(std::strerror(errno));
        return true;  // nothing learnt about the service: let the node try and say why
    }
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
    const int error = errno;
    ::close(fd);
    if (rc == 0)
        return true;
    *why = QString::fromLocal8Bit(std::strerror(error));
    return error != ENOENT && error != ENOTDIR && error != ECONNREFUSED;
}

ServiceChoice decideStartUp(const app::CommandLine& cl, const Launcher& launcher)
{
    if (cl.demo)
        return ServiceChoice::OpenDemo;
    QString why;
    if (serviceAnswers(cl.apiSocket, &why))
        return ServiceChoice::Continue;
    spdlog::warn("no service answers at {}: {}", cl.apiSocket, why.toStdString());
    ServiceOfferDialog dialog(QString::fromStdString(cl.apiSocket), why);
    dialog.exec();
    const ServiceChoice choice = dialog.choice();
    if (choice == ServiceChoice::StartService && launcher && !launcher(startServiceCommand()))
        spdlog::error("the service was not started; the local node stays connecting");
    return choice;
}

StartUp startUp(const app::CommandLine& cl, const Launcher& launcher)
{
    StartUp s;
    switch (decideStartUp(cl, launcher)) {
    case ServiceChoice::Quit:
        s.exitCode = app::ExitOk;
        return s;
    case ServiceChoice::OpenDemo: {
        QString why;
        int code = app::ExitOk;
        s.demo = openDemo(cl, &why, &code);
        if (!s.demo) {
            if (!why.isEmpty())
                std::fprintf(stderr, "redirect-console: %s\n", qPrintable(why));
            s.exitCode = code;
            return s;
        }
        s.nodeName = "demo";
        s.socket = s.demo->socket().toStdString();
        return s;
    }
    case ServiceChoice::StartService:
    case ServiceChoice::Continue:
        break;
    }
    s.nodeName = "local";
    s.socket = cl.apiSocket;
    return s;
}

}  // namespace redirect::gui
