// The swarm service's [[service]] keys (docs/configuration.md, docs/swarm.md). Setup-only.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "app/runtime/service_keys.hh"
#include "dataplane/io.hh"

namespace cw::swarm {

struct SwarmOptions {
  std::vector<std::string> torrents;  // .torrent files, each checked when the config is read
  std::string data_dir = ".";       // files live at data_dir/<name>[/<path>] (libtorrent's layout)
  std::vector<dp::Endpoint> peers;  // connected to for every torrent that is not complete
  std::string peer_id_prefix = "-CW0001-";  // the rest of the 20 bytes is random
  uint32_t max_peers = 50;                  // per torrent
  uint32_t unchoke_slots = 4;               // interested peers unchoked at once
  uint32_t pipeline = 16;                   // blocks requested ahead from one peer
  uint32_t max_active_pieces = 16;          // pieces being downloaded at once (buffers)
  uint32_t disk_reads = 256;                // pieces being prefaulted at once (to send)
  uint32_t peer_requests = 1024;  // requests a peer may queue with us (libtorrent asks up to 500)
  uint64_t idle_timeout_ms = 120'000;     // a peer that sends nothing this long is closed
  uint64_t keepalive_ms = 60'000;         // we send a keep-alive after this much silence
  uint32_t max_offences = 2;              // bad pieces from one peer before it is banned
  unsigned worker = 0;                    // the worker that owns the torrents
  bool trackers = true;                   // announce to trackers (the torrents', or tracker_urls)
  std::vector<std::string> tracker_urls;  // instead of each torrent's own: one tier each
};

inline constexpr std::array<std::string_view, 16> kSwarmOptionKeys = {
    "torrents",     "data_dir",      "peers",        "peer_id_prefix",
    "max_peers",    "unchoke_slots", "pipeline",     "max_active_pieces",
    "disk_reads",   "peer_requests", "idle_timeout", "keepalive",
    "max_offences", "worker",        "trackers",     "tracker_urls"};

SwarmOptions parse_swarm_options(rt::ServiceKeys& k);

}  // namespace cw::swarm
