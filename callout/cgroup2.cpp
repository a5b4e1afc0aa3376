#include "cgroup2.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <sys/mount.h>
#include <sys/stat.h>

#include "callout_loader.h"
#include "callout_paths.h"

namespace redirect::cgroup2 {

namespace {

// mountinfo escapes blanks, tabs, newlines and backslashes in paths as \ooo.
std::string unescapeMountPath(const std::string& s)
{
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
            s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            out += char((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string withoutTrailingSlash(std::string path)
{
    while (path.size() > 1 && path.back() == '/')
        path.pop_back();
    return path;
}

}  // namespace

std::string findRoot()
{
    std::ifstream mountinfo("/proc/self/mountinfo");
    std::string line;
    while (std::getline(mountinfo, line)) {
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        std::istringstream fields(line);
        std::string id, parent, device, rootField, mountPoint, field;
        fields >> id >> parent >> device >> rootField >> mountPoint;
        while (fields >> field && field != "-") {
        }
        // A bind mount of a sub-cgroup has another root field: it is not the hierarchy's root.
        if (fields >> field && field == "cgroup2" && rootField == "/")
            return unescapeMountPath(mountPoint);
    }
    return {};
}

std::string root()
{
    std::string found = findRoot();
    if (!found.empty())
        return found;
    std::string path = CALLOUT_RUN_DIR "/cgroup2";
    for (const std::string& dir : {std::string(CALLOUT_RUN_DIR), path})
        if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
            throw CalloutError("create " + dir + ": " + std::strerror(errno), errno);
    if (::mount("cgroup2", path.c_str(), "cgroup2", 0, nullptr) != 0)
        throw CalloutError("mount cgroup2 at " + path + ": " + std::strerror(errno), errno);
    return path;
}

std::string ofProcess(int pid, const std::string& rootPath)
{
    std::ifstream in(pid ? "/proc/" + std::to_string(pid) + "/cgroup" : std::string("/proc/self/cgroup"));
    for (std::string line; std::getline(in, line);)
        if (line.rfind("0::", 0) == 0)
            return withoutTrailingSlash(rootPath + line.substr(3));
    return {};
}

bool contains(const std::string& scope, const std::string& path)
{
    std::string s = withoutTrailingSlash(scope), p = withoutTrailingSlash(path);
    if (p == s)
        return true;
    return p.size() > s.size() && p.compare(0, s.size(), s) == 0 && (s == "/" || p[s.size()] == '/');
}

}  // namespace redirect::cgroup2
