// Who keeps BPF objects alive: the processes holding link and program descriptors (their
// /proc/PID/fdinfo), the pins under /sys/fs/bpf, and which cgroup attachment each bpf_link holds.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "coexistence.h"

namespace redirect::coexist {

class Holders {
public:
    /// One look at the system now; what cannot be read is added to `problems` with the reason.
    static Holders scan(std::vector<std::string>* problems);

    /// The links holding program `progId` at hook `attachType` of cgroup `cgroupId`, and the
    /// owners: the holders of those links (or, with no link, of the program itself) and pins.
    void ownersOf(uint64_t cgroupId, uint32_t attachType, uint32_t progId, std::vector<uint32_t>* links,
                  std::vector<Owner>* owners) const;

private:
    void listLinks(std::vector<std::string>* problems);
    void scanProcesses(std::vector<std::string>* problems);
    void scanPins(std::vector<std::string>* problems);

    std::map<std::tuple<uint64_t, uint32_t, uint32_t>, std::vector<uint32_t>> links_;  // (cgroup, hook, prog)
    std::map<uint32_t, std::vector<Owner>> linkOwners_;
    std::map<uint32_t, std::vector<Owner>> programOwners_;
};

}  // namespace redirect::coexist
