#include "bpf_owners.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "callout_paths.h"

namespace redirect::coexist {

namespace {

namespace fs = std::filesystem;

// Bounds of the pin walk: a bpffs with more than this is not one a console should walk each refresh.
constexpr int kPinDepth = 8;
constexpr size_t kPinEntries = 4096;

struct FdIds {
    uint32_t linkId = 0;
    uint32_t progId = 0;
};

// A BPF descriptor's ids, as its fdinfo tells: "link_id:" for a link (and its program's
// "prog_id:"), "prog_id:" alone for a program.
FdIds readFdinfo(const std::string& path)
{
    FdIds ids;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("link_id:", 0) == 0)
            ids.linkId = static_cast<uint32_t>(std::strtoul(line.c_str() + 8, nullptr, 10));
        else if (line.rfind("prog_id:", 0) == 0)
            ids.progId = static_cast<uint32_t>(std::strtoul(line.c_str() + 8, nullptr, 10));
    }
    return ids;
}

std::string commOf(int pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(in, comm);
    return comm;
}

void addOwner(std::vector<Owner>& owners, Owner owner)
{
    for (const Owner& o : owners)
        if (o.pid == owner.pid && o.comm == owner.comm && o.holds == owner.holds)
            return;
    owners.push_back(std::move(owner));
}

}  // namespace

Holders Holders::scan(std::vector<std::string>* problems)
{
    Holders h;
    h.listLinks(problems);
    h.scanProcesses(problems);
    h.scanPins(problems);
    return h;
}

void Holders::listLinks(std::vector<std::string>* problems)
{
    uint32_t id = 0;
    while (bpf_link_get_next_id(id, &id) == 0) {
        int fd = bpf_link_get_fd_by_id(id);
        if (fd < 0) {
            if (errno != ENOENT)  // gone since the listing: it holds nothing any more
                problems->push_back("cannot open bpf_link " + std::to_string(id) + ": " + std::strerror(errno));
            continue;
        }
        bpf_link_info info{};
        uint32_t length = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0)
            problems->push_back("cannot read bpf_link " + std::to_string(id) + ": " + std::strerror(errno));
        else if (info.type == BPF_LINK_TYPE_CGROUP)
            links_[{info.cgroup.cgroup_id, info.cgroup.attach_type, info.prog_id}].push_back(info.id);
        ::close(fd);
    }
    if (errno != ENOENT)
        problems->push_back(std::string("cannot list bpf_links: ") + std::strerror(errno));
}

void Holders::scanProcesses(std::vector<std::string>* problems)
{
    DIR* proc = ::opendir("/proc");
    if (!proc) {
        problems->push_back(std::string("cannot read /proc: ") + std::strerror(errno) + ": no owner processes");
        return;
    }
    size_t refused = 0;
    while (dirent* entry = ::readdir(proc)) {
        const int pid = std::atoi(entry->d_name);
        if (pid <= 0)
            continue;
        const std::string base = "/proc/" + std::string(entry->d_name);
        DIR* fds = ::opendir((base + "/fd").c_str());
        if (!fds) {
            refused += errno == EACCES || errno == EPERM;  // ENOENT: the process ended meanwhile
            continue;
        }
        std::string comm;
        while (dirent* fd = ::readdir(fds)) {
            char target[64] = {};
            const std::string link = base + "/fd/" + fd->d_name;
            if (::readlink(link.c_str(), target, sizeof(target) - 1) <= 0)
                continue;
            const bool isLink = std::strcmp(target, "anon_inode:bpf_link") == 0;
            if (!isLink && std::strcmp(target, "anon_inode:bpf-prog") != 0)
                continue;
            const FdIds ids = readFdinfo(base + "/fdinfo/" + fd->d_name);
            if (comm.empty())
                comm = commOf(pid);
            if (isLink && ids.linkId)
                addOwner(linkOwners_[ids.linkId], {pid, comm, "link"});
            else if (!isLink && ids.progId)
                addOwner(programOwners_[ids.progId], {pid, comm, "program"});
        }
        ::closedir(fds);
    }
    ::closedir(proc);
    if (refused)
        problems->push_back("cannot read the descriptors of " + std::to_string(refused) +
                            " processes (permission denied): their links and programs show no owner");
}

void Holders::scanPins(std::vector<std::string>* problems)
{
    std::error_code ec;
    fs::recursive_directory_iterator it(CALLOUT_BPFFS_ROOT, fs::directory_options::skip_permission_denied, ec);
    if (ec) {
        if (ec != std::errc::no_such_file_or_directory)
            problems->push_back("cannot read the pins under " CALLOUT_BPFFS_ROOT ": " + ec.message());
        return;
    }
    size_t seen = 0;
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec || ++seen > kPinEntries) {
            problems->push_back(ec ? "pins under " CALLOUT_BPFFS_ROOT " partly read: " + ec.message()
                                   : "more than " + std::to_string(kPinEntries) + " entries under " CALLOUT_BPFFS_ROOT
                                         ": the rest were not looked at");
            return;
        }
        if (it.depth() >= kPinDepth)
            it.disable_recursion_pending();
        if (!it->is_regular_file(ec))
            continue;
        const std::string path = it->path().string();
        int fd = bpf_obj_get(path.c_str());
        if (fd < 0)
            continue;  // not a BPF object, or one we may not open: maps are not what we look for
        const FdIds ids = readFdinfo("/proc/self/fdinfo/" + std::to_string(fd));
        ::close(fd);
        if (ids.linkId)
            addOwner(linkOwners_[ids.linkId], {0, path, "pinned link"});
        else if (ids.progId)
            addOwner(programOwners_[ids.progId], {0, path, "pinned program"});
    }
}

void Holders::ownersOf(uint64_t cgroupId, uint32_t attachType, uint32_t progId, std::vector<uint32_t>* links,
                       std::vector<Owner>* owners) const
{
    if (auto it = links_.find({cgroupId, attachType, progId}); it != links_.end())
        *links = it->second;
    for (uint32_t link : *links)
        if (auto it = linkOwners_.find(link); it != linkOwners_.end())
            for (const Owner& o : it->second)
                addOwner(*owners, o);
    // A link keeps its program alive by itself; without one (BPF_PROG_ATTACH) the program's
    // holders are the nearest thing to an owner the kernel tells.
    if (auto it = programOwners_.find(progId); it != programOwners_.end())
        for (const Owner& o : it->second)
            addOwner(*owners, o);
}

}  // namespace redirect::coexist
