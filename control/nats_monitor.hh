// nats-server's monitoring endpoints (/varz, /subsz), as far as the stats segment answers
// them, for the tools that read them: totals summed over every worker and every table of
// the pubsub service, under nats-server's field names. Fields nats-server has and the
// segment does not (per-connection lists, routes, JetStream) are absent, not invented.
#pragma once

#include <optional>

#include "control/control_socket.hh"
#include "control/segment.hh"

namespace cw::ctl {

// nullopt when the dataplane runs no pubsub service.
std::optional<Json> nats_varz(const Snapshot& s, uint64_t now_unix_ns);
std::optional<Json> nats_subsz(const Snapshot& s);

}  // namespace cw::ctl
