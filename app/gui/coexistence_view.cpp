#include "coexistence_view.h"

#include <QDateTime>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPointer>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>

namespace redirect::gui {

namespace {

const QColor kWarningBackground(0xff, 0xe0, 0xb0);
const QColor kErrorText(0xb0, 0x00, 0x20);

QString orderText(const v1::HookProgram& p)
{
    switch (p.order()) {
    case v1::RUN_ORDER_OURS: return CoexistenceView::tr("ours (#%1)").arg(p.run_position() + 1);
    case v1::RUN_ORDER_BEFORE_OURS: return CoexistenceView::tr("before ours (#%1)").arg(p.run_position() + 1);
    case v1::RUN_ORDER_AFTER_OURS: return CoexistenceView::tr("after ours (#%1)").arg(p.run_position() + 1);
    case v1::RUN_ORDER_NOT_RUN: return CoexistenceView::tr("not run for our scope");
    case v1::RUN_ORDER_NO_OURS: return CoexistenceView::tr("runs (#%1); none of ours here").arg(p.run_position() + 1);
    default: return CoexistenceView::tr("unknown");
    }
}

QString ownerText(const v1::HookProgram& p)
{
    QStringList owners;
    for (const v1::BpfOwner& o : p.owners())
        owners << (o.pid() ? CoexistenceView::tr("%1 (pid %2, %3)").arg(QString::fromStdString(o.name())).arg(o.pid())
                                 .arg(QString::fromStdString(o.holds()))
                           : CoexistenceView::tr("%1 (%2, no process)").arg(QString::fromStdString(o.name()),
                                                                             QString::fromStdString(o.holds())));
    if (!owners.isEmpty())
        return owners.join(QStringLiteral("; "));
    // No holder the kernel tells of: a legacy attachment stays until someone detaches it.
    return p.link_ids_size() == 0 ? CoexistenceView::tr("none (BPF_PROG_ATTACH: stays until detached)")
                                  : CoexistenceView::tr("link %1, holder not found").arg(p.link_ids(0));
}

}  // namespace

CoexistenceView::CoexistenceView(EngineBridge* bridge, QWidget* parent)
    : QWidget(parent), bridge_(bridge), summary_(new QLabel(this)), problems_(new QLabel(this)),
      refresh_(new QPushButton(tr("Refresh"), this)), table_(new QTableWidget(0, ColumnCount, this))
{
    setObjectName("coexistenceView");
    summary_->setObjectName("coexistenceSummary");
    summary_->setWordWrap(true);
    summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    problems_->setObjectName("coexistenceProblems");
    problems_->setWordWrap(true);
    problems_->setStyleSheet(QStringLiteral("color: #b00020"));
    problems_->hide();
    refresh_->setObjectName("coexistenceRefresh");
    table_->setObjectName("coexistenceTable");
    table_->setHorizontalHeaderLabels({tr("Hook"), tr("Cgroup"), tr("Program"), tr("Type"), tr("Attach flags"),
                                       tr("Owner"), tr("Ours"), tr("Order"), tr("Warning")});
    table_->verticalHeader()->hide();
    table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    table_->horizontalHeader()->setSectionResizeMode(Warning, QHeaderView::Stretch);
    table_->setTextElideMode(Qt::ElideLeft);  // cgroup paths: the tail tells them apart
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->setSelectionBehavior(QAbstractItemView::SelectRows);

    auto* top = new QHBoxLayout;
    top->addWidget(summary_, 1);
    top->addWidget(refresh_);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addWidget(problems_);
    layout->addWidget(table_, 1);

    connect(refresh_, &QPushButton::clicked, this, &CoexistenceView::refresh);
    // Another node selected: what is on screen belongs to the old one.
    connect(bridge_, &EngineBridge::nodesChanged, this, [this] {
        if (bridge_->selectedNode() != shownNode_ && isVisible())
            refresh();
    });
    summary_->setText(tr("Refresh to see who else is on the callout's hooks."));
}

void CoexistenceView::showEvent(QShowEvent* event)
{
    QWidget::showEvent(event);
    if (shownNode_ != bridge_->selectedNode() || table_->rowCount() == 0)
        refresh();
}

void CoexistenceView::refresh()
{
    const quint64 question = ++asked_;
    const QString node = bridge_->selectedNode();
    refresh_->setEnabled(false);
    summary_->setText(tr("Asking %1…").arg(node.isEmpty() ? tr("the node") : node));
    QPointer<CoexistenceView> self(this);
    bridge_->getCoexistence([self, question, node](const std::optional<v1::Coexistence>& answer, const QString& error) {
        if (!self || question != self->asked_)
            return;
        self->shownNode_ = node;
        self->refresh_->setEnabled(true);
        if (answer)
            self->showInventory(*answer);
        else
            self->showError(error);
    });
}

void CoexistenceView::showInventory(const v1::Coexistence& inventory)
{
    table_->setSortingEnabled(false);
    table_->setRowCount(inventory.programs_size());
    for (int r = 0; r < inventory.programs_size(); ++r) {
        const v1::HookProgram& p = inventory.programs(r);
        QString program = QStringLiteral("%1 %2").arg(p.prog_id()).arg(QString::fromStdString(p.name()));
        if (!p.error().empty())
            program += tr(" (%1)").arg(QString::fromStdString(p.error()));
        const QString cgroup = p.depth() == 0 ? tr("%1 (scope)").arg(QString::fromStdString(p.cgroup()))
                                              : tr("%1 (ancestor %2)").arg(QString::fromStdString(p.cgroup())).arg(p.depth());
        const QStringList cells{QString::fromStdString(p.hook()),
                                cgroup,
                                program,
                                QString::fromStdString(p.type()),
                                QString::fromStdString(p.attach_flags_text()),
                                ownerText(p),
                                p.ours() ? tr("ours") : tr("foreign"),
                                orderText(p),
                                QString::fromStdString(p.warning())};
        for (int c = 0; c < ColumnCount; ++c) {
            auto* item = new QTableWidgetItem(cells[c]);
            item->setToolTip(cells[c]);
            if (!p.warning().empty())
                item->setBackground(kWarningBackground);
            if (!p.error().empty())
                item->setForeground(kErrorText);
            if (c == Program)
                item->setData(ProgIdRole, p.prog_id());
            table_->setItem(r, c, item);
        }
    }
    const QString taken = QDateTime::fromMSecsSinceEpoch(inventory.taken_unix_ns() / 1000000).toString(Qt::ISODate);
    summary_->setText(tr("%1 — %2").arg(QString::fromStdString(inventory.summary()), taken));
    summary_->setStyleSheet(inventory.warnings() > 0 ? QStringLiteral("font-weight: bold; color: #b05000") : QString());
    QStringList problems;
    for (const std::string& p : inventory.problems())
        problems << QString::fromStdString(p);
    problems_->setText(tr("Not readable: %1").arg(problems.join(QStringLiteral("; "))));
    problems_->setVisible(!problems.isEmpty());
    emit refreshed();
}

void CoexistenceView::showError(const QString& error)
{
    table_->setRowCount(0);
    summary_->setText(tr("No inventory: %1").arg(error));
    summary_->setStyleSheet(QStringLiteral("color: #b00020"));
    problems_->hide();
    emit refreshed();
}

}  // namespace redirect::gui
