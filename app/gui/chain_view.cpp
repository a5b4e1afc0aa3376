#include "chain_view.h"

#include <QPainter>
#include <QPainterPath>

#include "format.h"

#include <netinet/in.h>

namespace redirect::gui {

namespace {

constexpr int kLines = std::tuple_size_v<decltype(ChainBox::lines)>;

// The flow table's units (engine/format.h), so that a hop's "1.5 KiB" is the table's "1.5 KiB".
QString bytesText(uint64_t b) { return QString::fromStdString(engine::formatBytes(b)); }

QString datagramsText(uint64_t up, uint64_t down)
{
    return ChainView::tr("datagrams ↑%1 ↓%2").arg(up).arg(down);
}

}  // namespace

ChainView::ChainView(QWidget* parent) : QWidget(parent)
{
    setAccessibleName(tr("Redirect chain"));
}

void ChainView::setFlow(const std::optional<engine::Flow>& flow)
{
    flow_ = flow;
    boxes_ = flow ? boxesOf(*flow) : std::vector<ChainBox>();
    // What the drawing says, as text: for screen readers (and for tests).
    QStringList text;
    for (const ChainBox& box : boxes_) {
        QStringList lines{box.title};
        for (const QString& line : box.lines)
            if (!line.isEmpty())
                lines << line;
        text << lines.join(QStringLiteral(", "));
    }
    setAccessibleDescription(text.join(QStringLiteral(" → ")));
    updateGeometry();
    update();
}

QSize ChainView::sizeHint() const
{
    int boxes = flow_ ? static_cast<int>(flow_->hops.size()) + 2 : 3;
    return {boxes * 190 + 20, 160};
}

QSize ChainView::minimumSizeHint() const { return {300, 150}; }

void ChainView::paintEvent(QPaintEvent*)
{
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    p.fillRect(rect(), palette().base());
    if (!flow_) {
        p.setPen(palette().color(QPalette::PlaceholderText));
        p.drawText(rect(), Qt::AlignCenter, tr("Select a flow to see its redirect chain"));
        return;
    }
    const engine::Flow& f = *flow_;
    const std::vector<ChainBox>& boxes = boxes_;
    const int n = static_cast<int>(boxes.size());
    const int gap = 36;
    const int boxW = std::max(120, std::min(180, (width() - 20 - gap * (n - 1)) / n));
    const int boxH = 26 + kLines * 20 + 4;
    const int caption = 20;
    const int top = std::max(8 + caption, (height() - boxH + caption) / 2);
    // Why it went this way, in words, above the drawing.
    p.setPen(palette().color(QPalette::Text));
    p.drawText(QRect(10, top - caption - 2, width() - 20, caption), Qt::AlignLeft | Qt::AlignVCenter,
               tr("Route: %1").arg(QString::fromStdString(f.routeText())));
    int x = 10;
    QFont bold = font();
    bold.setBold(true);
    for (int i = 0; i < n; ++i) {
        QRect r(x, top, boxW, boxH);
        QPainterPath path;
        path.addRoundedRect(r, 8, 8);
        p.fillPath(path, boxes[i].color.lighter(185));
        p.setPen(QPen(boxes[i].color, 2));
        p.drawPath(path);
        p.setPen(palette().color(QPalette::Text));
        p.setFont(bold);
        p.drawText(r.adjusted(6, 4, -6, 0), Qt::AlignHCenter | Qt::AlignTop,
                   p.fontMetrics().elidedText(boxes[i].title, Qt::ElideMiddle, boxW - 12));
        p.setFont(font());
        for (int l = 0; l < kLines; ++l)
            p.drawText(QRect(r.left() + 6, r.top() + 26 + l * 20, boxW - 12, 20), Qt::AlignHCenter | Qt::AlignVCenter,
                       p.fontMetrics().elidedText(boxes[i].lines[l], Qt::ElideRight, boxW - 12));
        if (i + 1 < n) {
            // Arrow to the next box.
            int y = top + boxH / 2;
            QPoint a(r.right() + 4, y), b(r.right() + gap - 4, y);
            p.setPen(QPen(palette().color(QPalette::Text), 2));
            p.drawLine(a, b);
            p.drawLine(b, b + QPoint(-7, -5));
            p.drawLine(b, b + QPoint(-7, 5));
        }
        x += boxW + gap;
    }
}

std::vector<ChainBox> ChainView::boxesOf(const engine::Flow& f)
{
    // UDP has no connect handshake to time: its hops show datagrams where TCP shows latency.
    const bool udp = f.protocol == IPPROTO_UDP;
    std::vector<ChainBox> boxes;
    boxes.push_back({QString::fromStdString(f.comm.empty() ? "app" : f.comm),
                     {tr("pid %1").arg(f.pid), tr("uid %1").arg(f.uid),
                      f.rule.empty() ? tr("no rule matched") : tr("rule %1").arg(QString::fromStdString(f.rule)),
                      QString::fromStdString(f.verdict)},
                     QColor(0x5b, 0x8d, 0xef)});
    for (const engine::Hop& hop : f.hops) {
        QString title = QString::fromStdString(hop.redirector.empty() ? std::to_string(hop.redirectorId) : hop.redirector);
        if (hop.external)
            title += tr(" (external)");
        QString latency = udp ? (hop.external ? tr("datagrams not measured")
                                              : datagramsText(hop.datagramsUp, hop.datagramsDown))
                          : hop.connectMs >= 0
                              ? tr("connect %1").arg(QString::fromStdString(
                                    engine::formatDuration(static_cast<int64_t>(hop.connectMs * 1e6))))
                              : tr("connect -");
        QString state = QString::fromLatin1(engine::redirectStateName(hop.state));
        if (hop.recordsMissing)
            state += tr(", no SET");
        // What an external proxy relayed is not reported to us: not measured, which is not 0.
        QString bytes = hop.external ? tr("bytes not measured")
                                     : tr("↑%1 ↓%2").arg(bytesText(hop.bytesUp), bytesText(hop.bytesDown));
        if (hop.inProcess)
            bytes += tr(", in-process");
        QString rule = hop.rule.empty() ? tr("rule unknown") : tr("via rule %1").arg(QString::fromStdString(hop.rule));
        boxes.push_back({title,
                         {rule, state, latency, bytes},
                         hop.recordsMissing ? QColor(0xe0, 0x8a, 0x2a)
                                            : (hop.external ? QColor(0x8e, 0x6b, 0xc9) : QColor(0x3a, 0xa5, 0x7a))});
    }
    boxes.push_back({(udp ? QStringLiteral("udp ") : QString()) + QString::fromStdString(f.destination),
                     {QString::fromStdString(f.host), QString::fromLatin1(engine::endReasonName(f.reason)),
                      tr("↑%1 ↓%2").arg(bytesText(f.bytesUp), bytesText(f.bytesDown)),
                      udp ? datagramsText(f.datagramsUp, f.datagramsDown) : QString()},
                     QColor(0x6b, 0x72, 0x80)});
    return boxes;
}

}  // namespace redirect::gui
