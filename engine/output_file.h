// Files the console writes as root where other users may reach: the flow log (--jsonl), reports
// (--report, the GUI's export) and exported rules. A user who can write the target's directory can
// pre-plant a symbolic link or a file of their own there, so none of these follows a link at the
// target, none creates a file others can read (0600), and nothing is emptied before it is replaced.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace redirect::engine {

/// A log that is only ever appended to (the flow log): a restart or a failed start never empties it.
class AppendFile {
public:
    AppendFile() = default;
    ~AppendFile();
    AppendFile(AppendFile&& other) noexcept;
    AppendFile& operator=(AppendFile&& other) noexcept;
    AppendFile(const AppendFile&) = delete;
    AppendFile& operator=(const AppendFile&) = delete;

    /// Opens `path` for appending, creating it with mode 0600. Refuses a symbolic link, anything but
    /// a regular file, a file owned by another user and a file with other hard links; narrows an
    /// existing file's mode to 0600 (older versions created 0644). On failure returns false and sets
    /// `error` to one line with the reason (errno text); nothing was created or changed.
    bool open(const std::string& path, std::string* error);
    bool isOpen() const { return fd_ >= 0; }
    /// Appends all of `text` in one write() where the system allows, retrying short writes.
    bool append(std::string_view text, std::string* error);

private:
    int fd_ = -1;
};

/// Whether a report could later be written at `path`, checked without creating, opening or
/// following anything: its directory exists and is writable, and `path` is absent or a regular
/// file (a symbolic link or a directory there is refused). False with the reason in `error`.
bool checkWholeFileTarget(const std::string& path, std::string* error);

/// Writes `path` whole or not at all: `write` fills a temporary file created O_EXCL with mode 0600
/// in the same directory, which is flushed to disk and then rename()d over `path`. rename() replaces
/// a symbolic link at `path` instead of following it, and readers see the old file or the new one,
/// never half of it. When `write` returns false or an I/O step fails, the temporary file is removed,
/// `path` is untouched, and `error` says why (errno text where the system gave one).
bool writeWholeFile(const std::string& path, const std::function<bool(std::ostream&)>& write, std::string* error);

}  // namespace redirect::engine
