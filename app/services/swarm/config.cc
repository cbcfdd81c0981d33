// The swarm service's [[service]] keys. Each torrent is loaded and checked here, so a bad
// file stops corewire with an error naming the key before any worker starts.
#include "app/services/swarm/config.hh"

#include "app/runtime/endpoint_keys.hh"
#include "app/services/swarm/storage.hh"
#include "app/services/swarm/tracker.hh"

namespace cw::swarm {

SwarmOptions parse_swarm_options(rt::ServiceKeys& k) {
  SwarmOptions o;
  if (auto v = k.strings("torrents")) {
    if (v->empty() || v->size() > 64) k.fail("torrents", "give 1 to 64 .torrent files");
    for (const std::string& path : *v) {
      auto t = load_torrent(path);
      if (!t)
        k.fail("torrents", t.error().message);
      else
        o.torrents.push_back(path);
    }
  } else {
    k.fail("torrents", "required: the .torrent files to seed or fetch");
  }
  if (auto v = k.string("data_dir")) {
    if (v->empty())
      k.fail("data_dir", "must not be empty");
    else
      o.data_dir = *v;
  }
  o.peers = rt::endpoint_list(k, "peers", 256);
  if (auto v = k.string("peer_id_prefix")) {
    bool ok = v->size() <= 12;
    for (char c : *v) ok = ok && c > ' ' && c < 0x7f;
    if (ok)
      o.peer_id_prefix = *v;
    else
      k.fail("peer_id_prefix", "must be at most 12 printable characters");
  }
  if (auto v = k.integer("max_peers", 1, 4096)) o.max_peers = uint32_t(*v);
  if (auto v = k.integer("unchoke_slots", 1, 1024)) o.unchoke_slots = uint32_t(*v);
  if (auto v = k.integer("pipeline", 1, 1024)) o.pipeline = uint32_t(*v);
  if (auto v = k.integer("max_active_pieces", 1, 4096)) o.max_active_pieces = uint32_t(*v);
  if (auto v = k.integer("disk_reads", 1, 65536)) o.disk_reads = uint32_t(*v);
  if (auto v = k.integer("peer_requests", 1, 65536)) o.peer_requests = uint32_t(*v);
  if (auto v = k.duration_ms("idle_timeout", 24 * 3600 * 1000)) {
    if (*v < 100)
      k.fail("idle_timeout", "must be at least 100ms");
    else
      o.idle_timeout_ms = *v;
  }
  if (auto v = k.duration_ms("keepalive", 24 * 3600 * 1000)) {
    if (*v < 100)
      k.fail("keepalive", "must be at least 100ms");
    else
      o.keepalive_ms = *v;
  }
  if (auto v = k.integer("max_offences", 1, 1000)) o.max_offences = uint32_t(*v);
  if (auto v = k.integer("worker", 0, 1023)) o.worker = unsigned(*v);
  if (auto v = k.boolean("trackers")) o.trackers = *v;
  if (auto v = k.strings("tracker_urls")) {
    if (v->size() > 16) k.fail("tracker_urls", "at most 16 trackers");
    for (const std::string& s : *v) {
      tracker::HttpUrl u;
      if (!tracker::split_url(s, u))
        k.fail("tracker_urls", "expected an http:// or https:// URL, got \"" + s + "\"");
      else
        o.tracker_urls.push_back(s);
    }
  }
  return o;
}

}  // namespace cw::swarm
