// The rtp service's [[service]] keys (docs/configuration.md, docs/rtp.md): one table is one
// port with its configured session (if `peer` is set) and the sessions opened at run time,
// all owned by one worker. Setup-only.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "app/runtime/service_keys.hh"
#include "dataplane/io.hh"

namespace cw::rtp {

enum class Mode : uint8_t { endpoint, relay };
enum class Codec : uint8_t { pcmu, l16 };

inline constexpr uint32_t kPacketMs = 20;  // packetisation interval of the tone source
inline constexpr uint64_t kPacketNs = uint64_t{kPacketMs} * 1'000'000;

struct RtpOptions {
  Mode mode = Mode::endpoint;
  dp::Endpoint peer{};         // endpoint: the peer (its RTP/RTCP port); relay: side A
  dp::Endpoint peer_b{};       // relay: side B
  dp::Endpoint peer_rtcp{};    // endpoint: where RTCP goes when not muxed on peer (0: peer)
  bool match_address = false;  // accept the peers' address from any port (peer_match)
  Codec codec = Codec::pcmu;
  uint8_t pt = 0;              // payload type sent (pcmu: 0; l16: dynamic, 96 by default)
  uint32_t clock_rate = 8000;  // Hz (PCMU is 8000 by RFC 3551)
  uint32_t tone_hz = 440;      // the sine the source sends, full cycles per second
  uint32_t ssrc = 0;           // 0: derived from the session's port and worker
  std::string cname = "corewire@localhost";
  unsigned worker = 0;          // the worker that owns the session
  uint64_t rtcp_min_ms = 5000;  // RFC 3550 6.2 Tmin (5 s); lower only for tests
  // Fault injection on what this session sends (endpoint mode).
  uint32_t loss_permille = 0;     // packets not sent, per 1000
  uint32_t jitter_ms = 0;         // each packet sent late by a uniform 0..jitter_ms
  uint32_t reorder_permille = 0;  // packets held back and sent after the next one, per 1000
  bool valid = false;             // peer (and peer_b for relay) set: the configured session
  // Sessions opened at run time (corewirectl rtp open): the table's capacity, allocated at
  // start-up (endpoint: on the owner; relay: a forwarding table on every worker). A relay
  // table takes none unless the key is given.
  uint32_t max_sessions = 16;
};
inline constexpr uint32_t kMaxSessions = 100'000;

// Packed by hand: clang-format would put one key per line.
// clang-format off
inline constexpr std::array<std::string_view, 17> kRtpOptionKeys = {
    "peer_rtcp", "peer_match", "mode", "peer", "peer_b", "payload", "pt", "clock_rate",
    "tone_hz", "ssrc", "cname", "worker", "max_sessions", "inject_loss", "inject_jitter",
    "inject_reorder", "rtcp_min_interval"};
// clang-format on

RtpOptions parse_rtp_options(rt::ServiceKeys& k);

}  // namespace cw::rtp
