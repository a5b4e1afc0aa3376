// The engine's records on the wire: the one place that maps engine types to the control API's
// messages and back (the service sends, the console and tests read).
#pragma once

#include "engine.h"
#include "flow.h"
#include "redirect_console.pb.h"

namespace redirect::service {

void toProto(const engine::Flow& flow, v1::Flow* out);
engine::Flow fromProto(const v1::Flow& flow);

v1::EndReason toProto(engine::EndReason reason);
engine::EndReason fromProto(v1::EndReason reason);

void toProto(const engine::RedirectorStatus& status, v1::Redirector* out);

}  // namespace redirect::service
