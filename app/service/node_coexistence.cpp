// GetCoexistence: the callout's inventory of other programs on its hooks, in the API's terms.
#include <chrono>
#include <set>

#include <spdlog/spdlog.h>

#include "coexistence.h"
#include "node_service.h"

namespace redirect::service {

namespace {

v1::RunOrder toProto(coexist::Order order)
{
    switch (order) {
    case coexist::Order::Ours: return v1::RUN_ORDER_OURS;
    case coexist::Order::Before: return v1::RUN_ORDER_BEFORE_OURS;
    case coexist::Order::After: return v1::RUN_ORDER_AFTER_OURS;
    case coexist::Order::NotRun: return v1::RUN_ORDER_NOT_RUN;
    case coexist::Order::NoneOfOurs: return v1::RUN_ORDER_NO_OURS;
    case coexist::Order::Unknown: return v1::RUN_ORDER_UNKNOWN;
    }
    return v1::RUN_ORDER_UNKNOWN;
}

void toProto(const coexist::Attachment& a, v1::HookProgram* out)
{
    out->set_hook(a.hook);
    out->set_cgroup(a.cgroup);
    out->set_depth(static_cast<uint32_t>(a.depth));
    out->set_prog_id(a.progId);
    out->set_name(a.name);
    out->set_type(a.type);
    out->set_tag(a.tag);
    out->set_loaded_unix_ns(a.loadedUnixNs);
    out->set_created_by_uid(a.createdByUid);
    out->set_attach_flags(a.attachFlags);
    out->set_attach_flags_text(coexist::attachFlagsText(a.attachFlags));
    for (uint32_t link : a.linkIds)
        out->add_link_ids(link);
    for (const coexist::Owner& o : a.owners) {
        v1::BpfOwner* owner = out->add_owners();
        owner->set_pid(static_cast<uint32_t>(o.pid));
        owner->set_name(o.comm);
        owner->set_holds(o.holds);
    }
    out->set_ours(a.ours);
    out->set_order(toProto(a.order));
    out->set_run_position(a.runPosition);
    out->set_warning(a.warning);
    out->set_error(a.error);
}

}  // namespace

grpc::Status NodeService::GetCoexistence(grpc::ServerContext* context, const v1::GetCoexistenceRequest*,
                                         v1::Coexistence* reply)
{
    if (auto s = check(*context, Right::View); !s.ok())
        return s;
    const std::vector<uint32_t>& ids = engine_.callout().programIds();
    const coexist::Report report = coexist::inventory(engine_.scope(), std::set<uint32_t>(ids.begin(), ids.end()));
    reply->set_scope(report.scope);
    for (const std::string& cgroup : report.cgroups)
        reply->add_cgroups(cgroup);
    for (const coexist::Attachment& a : report.attachments)
        toProto(a, reply->add_programs());
    for (const std::string& problem : report.problems)
        reply->add_problems(problem);
    reply->set_foreign(static_cast<uint32_t>(report.foreignCount()));
    reply->set_warnings(static_cast<uint32_t>(report.warningCount()));
    reply->set_summary(report.summary());
    reply->set_taken_unix_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
    for (const std::string& problem : report.problems)
        spdlog::debug("coexistence: {}", problem);
    return grpc::Status::OK;
}

}  // namespace redirect::service
