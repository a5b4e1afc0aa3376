#include "table_csv.h"

#include <QAbstractItemModel>

#include "format.h"

namespace redirect::gui {

QString rowsAsCsv(const QAbstractItemModel& model, const QList<int>& rows)
{
    // Every cell is display text ("1.5 KiB", "curl [42] alice"), so every cell is guarded as text.
    std::string out;
    auto appendLine = [&](auto cell) {
        for (int c = 0; c < model.columnCount(); ++c) {
            if (c)
                out += ',';
            engine::appendCsvField(out, cell(c).toString().toStdString(), engine::CsvField::Text);
        }
        out += "\r\n";
    };
    appendLine([&](int c) { return model.headerData(c, Qt::Horizontal); });
    for (int row : rows)
        appendLine([&](int c) { return model.index(row, c).data(); });
    return QString::fromStdString(out);
}

}  // namespace redirect::gui
