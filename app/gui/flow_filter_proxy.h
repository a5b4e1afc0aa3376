// Sorting and filtering of the flow table: the console's FlowFilter syntax
// ("text and field:value") plus an optional time range, on raw values.
#pragma once

#include <QSortFilterProxyModel>

#include <cstdint>
#include <optional>

#include "report.h"

namespace redirect::gui {

class FlowModel;

class FlowFilterProxy : public QSortFilterProxyModel {
    Q_OBJECT
public:
    explicit FlowFilterProxy(QObject* parent = nullptr);

    /// Parses `text` as an engine::FlowFilter. On a parse error the previous filter stays,
    /// filterError() says why and filterErrorChanged() is emitted; returns whether it parsed.
    bool setFilterText(const QString& text);
    QString filterText() const { return text_; }
    QString filterError() const { return error_; }

    /// Keep flows that overlap [fromNs, toNs]; 0 bounds are open.
    void setTimeRange(int64_t fromNs, int64_t toNs);
    int64_t fromNs() const { return fromNs_; }
    int64_t toNs() const { return toNs_; }

    /// Flows that went direct (Flow::direct(): a bypass rule, no rule, a redirector passed over)
    /// are shown only when asked for: most of a machine's connections are these.
    void setShowDirect(bool show);
    bool showDirect() const { return showDirect_; }

    void setSourceModel(QAbstractItemModel* model) override;

signals:
    /// Empty when the current text parsed.
    void filterErrorChanged(const QString& error);

protected:
    bool filterAcceptsRow(int sourceRow, const QModelIndex& sourceParent) const override;
    bool lessThan(const QModelIndex& left, const QModelIndex& right) const override;

private:
    FlowModel* flows_ = nullptr;
    engine::FlowFilter filter_;
    QString text_;
    QString error_;
    int64_t fromNs_ = 0;
    int64_t toNs_ = 0;
    bool showDirect_ = false;
};

}  // namespace redirect::gui
