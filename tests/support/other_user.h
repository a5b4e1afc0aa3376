// Running a built program as another user (nobody). The build tree may be out of that user's
// reach (root's checkout in /root is mode 0700, as on a fresh machine), and so may the project's
// shared libraries its RUNPATH names: both are copied to a directory every user can read and run.
#pragma once

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcessEnvironment>
#include <QString>

#include <sys/stat.h>

namespace redirect::test {

/// Why another user cannot reach `path`: the first directory on the way from "/" that others may
/// not pass (no o+x), as "user nobody cannot reach PATH: DIR is mode 0700 ..."; "" when every
/// directory lets them through. Tests that run something as nobody check this first, so that a
/// machine whose "/" or /tmp is closed fails with the reason instead of an exec error in a child.
inline QString whyOtherUsersCannotReach(const QString& path)
{
    const QStringList parts = QFileInfo(path).absoluteFilePath().split(QLatin1Char('/'), Qt::SkipEmptyParts);
    QString dir = QStringLiteral("/");
    for (qsizetype i = 0; i < parts.size(); ++i) {
        struct stat st {};
        if (::stat(QFile::encodeName(dir).constData(), &st) == 0 && !(st.st_mode & S_IXOTH))
            return QStringLiteral("user nobody cannot reach %1: %2 is mode %3 (others may not pass)")
                .arg(path, dir, QString::number(st.st_mode & 07777, 8).rightJustified(4, QLatin1Char('0')));
        dir = QDir(dir).filePath(parts[i]);
    }
    return {};
}

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
