// Where cgroup v2 lives on this machine and which cgroup a process is in: the one parser of
// /proc/self/mountinfo and /proc/PID/cgroup that the loader, the rules and the sandboxes share.
#pragma once

#include <string>

namespace redirect::cgroup2 {

/// Mount point of the cgroup2 hierarchy's root ("/" in mountinfo's root field) in this mount
/// namespace, or "" when none is mounted. Paths escaped by mountinfo (\ooo) are unescaped.
std::string findRoot();

/// findRoot(), mounting cgroup2 under /run/redirect-console when it is not mounted; throws
/// CalloutError with the reason when that fails.
std::string root();

/// Absolute path of the cgroup v2 directory of process `pid` (0: this process) below `rootPath`,
/// from /proc/PID/cgroup's "0::" line; "" when the process is gone or has no v2 cgroup.
std::string ofProcess(int pid, const std::string& rootPath);

/// `path` is `scope` or a directory below it (both absolute, no trailing slash needed).
bool contains(const std::string& scope, const std::string& path);

}  // namespace redirect::cgroup2
