// Running a built program as another user (nobody). The build tree may be out of that user's
// reach (root's checkout in /root is mode 0700, as on a fresh machine), and so may the project's
// shared libraries its RUNPATH names: both are copied to a directory every user can read and run.
#pragma once

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcessEnvironment>
#include <QString>

namespace redirect::test {

/// Copies `program` and the build's shared libraries (../lib/libredirect_*.so*, next to bin/)
/// into `dir` (made, or opened up, to mode 0755: its parents must let the user through, as /tmp
/// does), readable and runnable by all; returns the copy, or "" when a step fails.
inline QString stageForOtherUser(const QString& program, const QString& dir)
{
    const auto rx = QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner | QFile::ReadGroup | QFile::ExeGroup |
                    QFile::ReadOther | QFile::ExeOther;
    if (!QDir().mkpath(dir) || !QFile::setPermissions(dir, rx))
        return {};
    const QString target = QDir(dir).filePath(QFileInfo(program).fileName());
    QFile::remove(target);
    if (!QFile::copy(program, target) || !QFile::setPermissions(target, rx))
        return {};
    const QDir lib(QFileInfo(program).absolutePath() + QStringLiteral("/../lib"));
    for (const QString& name : lib.entryList({QStringLiteral("libredirect_*.so*")}, QDir::Files)) {
        const QString copy = QDir(dir).filePath(name);
        QFile::remove(copy);
        if (!QFile::copy(lib.filePath(name), copy) || !QFile::setPermissions(copy, rx))
            return {};
    }
    return target;
}

/// `env` with the staged libraries found first (LD_LIBRARY_PATH), for a program from stageForOtherUser.
inline QProcessEnvironment stagedEnvironment(QProcessEnvironment env, const QString& dir)
{
    env.insert(QStringLiteral("LD_LIBRARY_PATH"), dir);
    return env;
}

}  // namespace redirect::test
