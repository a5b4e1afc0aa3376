// Another vendor's program on our hooks, as small as the kernel accepts: a cgroup sock_addr
// program that allows every call ("return 1"), attached by a bpf_link this object owns (gone
// with it, even when the test fails) or, for the legacy case, by BPF_PROG_ATTACH (detached by
// the destructor; the sandbox's cgroup removal is the second line).
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

namespace redirect::test {

/// Attach flag of kernel 6.15+ (not in these headers): runs before the programs of the cgroups below.
inline constexpr uint32_t kPreorder = 1U << 6;

class ForeignProgram {
public:
    enum class Attach { Link, Legacy };

    /// Loads `name` for `hook` (a cgroup sock_addr attach type) and attaches it to `cgroup` with
    /// `flags`; throws std::runtime_error with the step and errno text.
    ForeignProgram(const std::string& name, bpf_attach_type hook, const std::string& cgroup, Attach how = Attach::Link,
                   uint32_t flags = 0)
        : hook_(hook), legacy_(how == Attach::Legacy)
    {
        const bpf_insn allow[] = {
            {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1},  // r0 = 1: let the call through
            {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
        };
        LIBBPF_OPTS(bpf_prog_load_opts, load);
        load.expected_attach_type = hook;
        prog_ = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, name.c_str(), "GPL", allow, 2, &load);
        if (prog_ < 0)
            fail("load " + name);
        cgroup_ = ::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cgroup_ < 0)
            fail("open " + cgroup);
        if (legacy_) {
            if (bpf_prog_attach(prog_, cgroup_, hook, flags) != 0)
                fail("attach " + name + " to " + cgroup);
            attached_ = true;
        } else {
            LIBBPF_OPTS(bpf_link_create_opts, opts);
            opts.flags = flags;
            link_ = bpf_link_create(prog_, cgroup_, hook, &opts);
            if (link_ < 0)
                fail("link " + name + " to " + cgroup);
        }
        bpf_prog_info info{};
        uint32_t length = sizeof(info);
        if (bpf_obj_get_info_by_fd(prog_, &info, &length) != 0)
            fail("read the id of " + name);
        id_ = info.id;
    }
    ~ForeignProgram() { detach(); }
    ForeignProgram(const ForeignProgram&) = delete;
    ForeignProgram& operator=(const ForeignProgram&) = delete;

    uint32_t id() const { return id_; }
    int programFd() const { return prog_; }
    /// Takes it off the hook now.
    void detach()
    {
        if (link_ >= 0)
            ::close(link_);
        link_ = -1;
        if (attached_)
            bpf_prog_detach2(prog_, cgroup_, hook_);
        attached_ = false;
        for (int* fd : {&prog_, &cgroup_})
            if (*fd >= 0)
                ::close(*fd);
        prog_ = cgroup_ = -1;
    }

private:
    [[noreturn]] void fail(const std::string& step)
    {
        const int e = errno;
        detach();
        throw std::runtime_error(step + ": " + std::strerror(e));
    }

    bpf_attach_type hook_;
    bool legacy_;
    bool attached_ = false;
    int prog_ = -1;
    int cgroup_ = -1;
    int link_ = -1;
    uint32_t id_ = 0;
};

}  // namespace redirect::test
