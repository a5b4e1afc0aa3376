// Rows of a table view as CSV text: what the console's "Copy rows as CSV" (Ctrl+C) puts on the
// clipboard. Each cell goes through the reports' field writer (engine/format.h), so a copied cell
// that starts like a formula is as harmless in a spreadsheet as one in an exported report.
#pragma once

#include <QList>
#include <QString>

class QAbstractItemModel;

namespace redirect::gui {

/// The header row and then `rows` of `model`, cells as displayed, CRLF after each line (RFC 4180).
QString rowsAsCsv(const QAbstractItemModel& model, const QList<int>& rows);

}  // namespace redirect::gui
