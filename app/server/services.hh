// The server's service registry: the one file that names the concrete services. Each entry
// gives a service's name, its own config keys and sockets (through its class, see
// registry.hh) and its factory; the workers dispatch on the Services variant.
#pragma once

#include <array>
#include <variant>

#include "app/runtime/registry.hh"
#include "app/server/registry.hh"
#include "app/services/echo_native.hh"
#include "app/services/echo_sockperf.hh"
#include "app/services/kv/service.hh"
#include "app/services/peer/service.hh"
#include "app/services/pubsub/service.hh"
#include "app/services/rtp/service.hh"
#include "app/services/swarm/service.hh"

namespace cw::server {

struct ServerConfig;

using Services = std::variant<svc::SockperfEcho, svc::NativeEcho, svc::Kv, svc::Pubsub, svc::Rtp,
                              svc::Swarm, svc::Peer>;

// Every name a [[service]] table may give.
inline const std::array<ServiceEntry<Services>, std::variant_size_v<Services>> kRegistry = {
    entry<Services, svc::SockperfEcho>("sockperf-echo",
                                       "sockperf's wire format (for the sockperf client)"),
    entry<Services, svc::NativeEcho>("echo", "the native corewire protocol (docs/protocol.md)"),
    entry<Services, svc::Kv>("kv", "memcached's text and meta protocols, TCP and UDP (docs/kv.md)"),
    entry<Services, svc::Pubsub>("pubsub", "the NATS client protocol, TCP (docs/pubsub.md)"),
    entry<Services, svc::Rtp>("rtp", "RTP/RTCP sessions: tone endpoint or relay (docs/rtp.md)"),
    entry<Services, svc::Swarm>("swarm",
                                "BitTorrent peers: seed and fetch torrents (docs/swarm.md)"),
    entry<Services, svc::Peer>("peer", "QUIC peer sessions with mutual TLS (docs/cluster.md)"),
};

// What parse_config accepts by default.
const ServiceCatalog& server_catalog();

// The server's AppSpec: its sockets and each worker's own service instances.
rt::AppSpec<Services> make_app(const ServerConfig& cfg);

}  // namespace cw::server
