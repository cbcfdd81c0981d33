// The kv service's [[service]] keys.
#include "app/services/kv/config.hh"

#include <algorithm>

namespace cw::kv {

KvOptions parse_kv_options(rt::ServiceKeys& k) {
  KvOptions o;
  if (auto v = k.size("item_size_max", 1024, uint64_t{1} << 30)) o.item_size_max = *v;
  if (auto v = k.size("memory_limit", uint64_t{1} << 20, uint64_t{1} << 40)) o.memory_limit = *v;
  if (o.memory_limit < 4 * o.item_size_max)
    k.fail("memory_limit", "must hold at least 4 item_size_max pages (" +
                               std::to_string(4 * o.item_size_max) + " bytes)");
  if (auto v = k.string("warm_restart_file")) {
    if (v->empty() || v->back() == '/')
      k.fail("warm_restart_file", "must name a file (workers add .0, .1, ...)");
    else
      o.warm_restart_file = *v;
  }
  if (auto v = k.boolean("udp_public")) o.udp_public = *v;
  if (auto v = k.integer("udp_reply_factor", 1, 100)) o.udp_reply_factor = uint32_t(*v);
  if (auto v = k.strings("udp_trusted")) {
    if (v->size() > kMaxUdpTrusted)
      k.fail("udp_trusted", "at most " + std::to_string(kMaxUdpTrusted) + " entries");
    for (const std::string& s : *v) {
      if (auto c = parse_cidr(s))
        o.udp_trusted.push_back(*c);
      else
        k.fail("udp_trusted", "'" + s + "' is not \"a.b.c.d/len\"");
    }
  }
  if (auto v = k.duration_ms("udp_tcp_trust", uint64_t{86400} * 1000))
    o.udp_tcp_trust_s = uint32_t(*v / 1000);
  if (auto v = k.integer("pipeline_depth", 1, 1024)) o.pipeline_depth = uint32_t(*v);
  if (auto v = k.boolean("cluster")) o.cluster = *v;
  return o;
}

uint64_t partition_bytes(const KvOptions& o, unsigned workers) {
  const uint64_t share = o.memory_limit / std::max(workers, 1u);
  const uint64_t bytes = std::max(share, 4 * o.item_size_max);
  return std::min<uint64_t>(bytes, kMaxArenaBytes);
}

}  // namespace cw::kv
