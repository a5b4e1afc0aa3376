// "Connect to node…": a remote node's name, address and the three PEM files of mutual TLS, checked
// before anything is tried; and the nodes the console remembers (QSettings, group "nodes") so that
// it watches them again at its next start. The local node (or the demo's) is never remembered: the
// console finds it by itself.
#pragma once

#include <QDialog>
#include <QList>
#include <QString>

#include <functional>

#include "node_client.h"

class QLabel;
class QLineEdit;
class QSettings;

namespace redirect::gui {

/// Why these fields do not make a remote node (empty when they do): a name without spaces, an
/// address HOST:PORT (port 1-65535, [v6]:PORT for IPv6), and readable CA, certificate and key files.
QString endpointProblem(const client::NodeEndpoint& endpoint);

/// The remembered remote nodes, in the order they were added.
QList<client::NodeEndpoint> rememberedNodes(QSettings& settings);
/// Adds or replaces (by name) a remembered node.
void rememberNode(QSettings& settings, const client::NodeEndpoint& endpoint);
/// Forgets a node; false when it was not remembered.
bool forgetNode(QSettings& settings, const QString& name);

class ConnectDialog : public QDialog {
    Q_OBJECT
public:
    /// `add` tries the endpoint (the bridge's addNode): false with the reason keeps the dialog open
    /// with that reason shown, and nothing is remembered.
    using Add = std::function<bool(const client::NodeEndpoint& endpoint, QString* error)>;
    explicit ConnectDialog(Add add, QWidget* parent = nullptr);

    /// The endpoint the fields describe (target "HOST:PORT").
    client::NodeEndpoint endpoint() const;
    QString error() const;
    /// OK: checks the fields, then `add`; closes only when both passed.
    void accept() override;

private:
    QLineEdit* file(const QString& objectName, const QString& title);

    Add add_;
    QLineEdit* name_;
    QLineEdit* address_;
    QLineEdit* ca_ = nullptr;
    QLineEdit* cert_ = nullptr;
    QLineEdit* key_ = nullptr;
    QLabel* error_;
};

}  // namespace redirect::gui
