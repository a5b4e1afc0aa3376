#include "audit_log.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "redirector.h"

namespace redirect::service {

bool AuditLog::open(const std::string& path, std::string* error)
{
    path_ = path;
    return path.empty() || file_.open(path, error);
}

void AuditLog::record(const std::string& who, long uid, const std::string& action, const std::string& what,
                      const std::string& outcome)
{
    nlohmann::json j = {{"time_unix_ns", engine::wallNowNs()}, {"who", who},       {"uid", uid},
                        {"action", action},                    {"what", what},     {"outcome", outcome}};
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
    spdlog::info("audit: {} {} {}: {}", who, action, what, outcome);
    std::lock_guard lock(mutex_);
    std::string error;
    if (file_.isOpen() && !file_.append(line, &error))
        spdlog::error("audit log {}: {}", path_, error);
}

}  // namespace redirect::service
