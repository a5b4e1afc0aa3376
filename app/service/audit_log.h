// Who changed what on this node: one JSON line per change (or refused change), appended.
#pragma once

#include <mutex>
#include <string>

#include "output_file.h"

namespace redirect::service {

class AuditLog {
public:
    /// Opens `path` for appending (0600, never through a link; see engine::AppendFile); "" keeps
    /// the audit in the service log only. False with the reason in *error.
    bool open(const std::string& path, std::string* error);
    /// One line: time, who, uid, action, what, outcome. Also logged at info level.
    void record(const std::string& who, long uid, const std::string& action, const std::string& what,
                const std::string& outcome);

private:
    std::mutex mutex_;
    engine::AppendFile file_;
    std::string path_;
};

}  // namespace redirect::service
