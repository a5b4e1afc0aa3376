// privilege_probe: the console's administrator gate and nothing else, for tst_privilege.
// Prints "STARTED" only when the gate lets it through; exits 3 (ExitNotAdministrator) otherwise.
#include <cstdio>

#include <QApplication>

#include "command_line.h"
#include "privilege.h"

int main(int argc, char** argv)
{
    QApplication app(argc, argv);
    if (!redirect::gui::ensureAdministrator(QApplication::arguments().mid(1)))
        return redirect::app::ExitNotAdministrator;
    std::puts("STARTED");
    return redirect::app::ExitOk;
}
