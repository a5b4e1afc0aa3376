// What the console attaches to when it starts: the local service, or its private demo. When no
// service answers at the local socket it offers, in one dialog, to start the system service
// (systemctl, which asks polkit), to open the demo, to continue without it, or to quit.
#pragma once

#include <memory>
#include <string>

#include <QDialog>
#include <QString>

#include "command_line.h"
#include "demo_service.h"
#include "privilege.h"

class QLabel;
class QPushButton;

namespace redirect::gui {

enum class ServiceChoice { StartService, OpenDemo, Continue, Quit };

/// Says that no service answers at a socket and what each choice does: "Start the service"
/// (default), "Open the demo", "Continue", "Quit"; Escape and the close button mean Continue.
/// Object names: "offerMessage" (the QLabel), "startServiceButton", "openDemoButton",
/// "continueButton", "quitButton". With REDIRECT_SERVICE_AUTOANSWER=start|demo|continue|quit in
/// the environment (tests only) it answers itself once it has been shown.
class ServiceOfferDialog : public QDialog {
    Q_OBJECT
public:
    /// `reason`: why nothing answered (connect(2)'s error), shown with the path.
    explicit ServiceOfferDialog(const QString& socketPath, const QString& reason = {}, QWidget* parent = nullptr);

    ServiceChoice choice() const { return choice_; }
    QString message() const;

protected:
    void showEvent(QShowEvent* event) override;

private:
    void choose(ServiceChoice choice);

    ServiceChoice choice_ = ServiceChoice::Continue;
    QLabel* message_ = nullptr;
    bool autoAnswered_ = false;
};

/// Whether a service answers at `socketPath`: false only when nothing is there or nothing listens
/// (connect(2) says ENOENT, ENOTDIR or ECONNREFUSED), with the reason in *why. Any other answer
/// (EACCES, say) is a service this user may not use: the node will say so once attached.
bool serviceAnswers(const std::string& socketPath, QString* why);

/// The decision before the window opens: --demo → OpenDemo; a service answering at cl.apiSocket →
/// Continue, no dialog; otherwise the ServiceOfferDialog (modal, needs a QApplication), and
/// StartService calls launcher(startServiceCommand()) once before it returns.
ServiceChoice decideStartUp(const app::CommandLine& cl, const Launcher& launcher = launchDetached);

/// What the console's first node attaches to, or how the console ends before its window.
struct StartUp {
    int exitCode = -1;                 ///< >= 0: the console ends now with this code
    std::string nodeName;              ///< "local" or "demo"
    std::string socket;                ///< that node's Unix socket
    std::unique_ptr<DemoService> demo; ///< the demo's private service, when the node is the demo
};

/// The console's start-up (runGui, and the test probe): decideStartUp(), then for the demo
/// openDemo(); Quit ends with ExitOk. A demo that did not come up ends it with openDemo()'s code,
/// its reason printed on stderr.
StartUp startUp(const app::CommandLine& cl, const Launcher& launcher = launchDetached);

}  // namespace redirect::gui
