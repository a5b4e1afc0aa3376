#include "flow_details.h"

#include <QFontDatabase>
#include <QGridLayout>
#include <QLabel>
#include <QPlainTextEdit>
#include <QVBoxLayout>

#include "chain_view.h"

#include <netinet/in.h>

namespace redirect::gui {

namespace {

// Classic hex dump: offset, 16 bytes, ASCII.
QString hexDump(const std::vector<uint8_t>& bytes)
{
    QString out;
    for (size_t off = 0; off < bytes.size(); off += 16) {
        QString hex, ascii;
        for (size_t i = off; i < off + 16; ++i) {
            if (i < bytes.size()) {
                hex += QString::asprintf("%02x ", bytes[i]);
                ascii += (bytes[i] >= 32 && bytes[i] < 127) ? QChar(bytes[i]) : QChar('.');
            } else {
                hex += "   ";
            }
            if (i == off + 7)
                hex += ' ';
        }
        out += QString::asprintf("%04zx  ", off) + hex + ' ' + ascii + '\n';
    }
    return out;
}

}  // namespace

QPlainTextEdit* monospaceView(QWidget* parent)
{
    auto* view = new QPlainTextEdit(parent);
    view->setReadOnly(true);
    view->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    view->setLineWrapMode(QPlainTextEdit::NoWrap);
    return view;
}

FlowDetails::FlowDetails(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    chain_ = new ChainView;
    chain_->setObjectName("chainView");
    layout->addWidget(chain_);
    datagrams_ = new QLabel;
    datagrams_->setObjectName("datagramsPerHop");
    datagrams_->hide();
    layout->addWidget(datagrams_);
    auto* grid = new QGridLayout;
    recordsSize_ = new QLabel(tr("Redirect records"));
    contextSize_ = new QLabel(tr("Redirect context"));
    recordsHex_ = monospaceView();
    recordsHex_->setObjectName("recordsHex");
    contextHex_ = monospaceView();
    contextHex_->setObjectName("contextHex");
    grid->addWidget(recordsSize_, 0, 0);
    grid->addWidget(contextSize_, 0, 1);
    grid->addWidget(recordsHex_, 1, 0);
    grid->addWidget(contextHex_, 1, 1);
    layout->addLayout(grid, 1);
}

void FlowDetails::setFlow(const std::optional<engine::Flow>& flow)
{
    chain_->setFlow(flow);
    // TCP has no datagrams, and nobody counts those of a direct flow: the line is hidden then,
    // rather than showing zeros.
    const bool shown = flow && flow->protocol == IPPROTO_UDP && !flow->hops.empty();
    if (shown) {
        QStringList perHop;
        for (const engine::Hop& h : flow->hops)
            perHop << (h.external ? tr("not measured") : tr("%1 / %2").arg(h.datagramsUp).arg(h.datagramsDown));
        datagrams_->setText(tr("UDP datagrams up / down per hop: %1").arg(perHop.join(" → ")));
    }
    datagrams_->setVisible(shown);
    std::vector<uint8_t> records, context;
    QString recordsText = tr("Redirect records"), contextText = tr("Redirect context");
    QString empty = flow ? tr("(not kept for this flow)") : QString();
    if (flow && flow->hops.empty()) {
        empty = tr("(none: the connection went direct)");
    } else if (flow) {
        // The last hop we relayed carries the longest records.
        for (const engine::Hop& h : flow->hops) {
            if (!h.records.empty())
                records = h.records;
            if (!h.context.empty() && context.empty())
                context = h.context;
        }
        QStringList rs, cs;
        for (const engine::Hop& h : flow->hops) {
            rs << QString::number(h.recordsSize);
            cs << QString::number(h.contextSize);
        }
        recordsText = tr("Redirect records: %1 bytes per hop").arg(rs.join(" → "));
        contextText = tr("Redirect context: %1 bytes per hop").arg(cs.join(" → "));
    }
    recordsSize_->setText(recordsText);
    contextSize_->setText(contextText);
    recordsHex_->setPlainText(records.empty() ? empty : hexDump(records));
    contextHex_->setPlainText(context.empty() ? empty : hexDump(context));
}

}  // namespace redirect::gui
