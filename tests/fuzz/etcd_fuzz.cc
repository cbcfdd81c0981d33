// libFuzzer target: etcd v3 gateway replies (app/services/peer/etcd.hh), as the membership
// thread parses them. A range the parser accepts holds at most the span's members, each with
// a valid id, a nonzero address and port, sorted by id, and writes back (member_value) to a
// value that parses to the same member. Grants and keep-alives it accepts are in range.
#include <array>
#include <cstdlib>
#include <string_view>

#include "app/services/peer/etcd.hh"

namespace etcd = cw::peer::etcd;

#define ETCD_CHECK(c)       \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  static std::array<etcd::Member, 8> out;
  size_t n = 0, bad = 0;
  if (etcd::parse_range(in, "/cw/", out, &n, &bad) == etcd::Error::ok) {
    ETCD_CHECK(n <= out.size());
    for (size_t i = 0; i < n; ++i) {
      const etcd::Member& m = out[i];
      ETCD_CHECK(etcd::valid_node_id(m.name()));
      ETCD_CHECK(m.addr.addr_be != 0 && m.addr.port_be != 0);
      if (i) ETCD_CHECK(out[i - 1].name() < m.name() || out[i - 1].name() == m.name());
      etcd::Member back;
      ETCD_CHECK(
          etcd::parse_member(m.name(), etcd::member_value(m.name(), m.addr, m.fp), m.lease, back));
      ETCD_CHECK(back.same(m));
    }
  }
  etcd::Grant g;
  if (etcd::parse_grant(in, g) == etcd::Error::ok) ETCD_CHECK(g.id != 0 && g.ttl > 0);
  int64_t ttl = -1;
  if (etcd::parse_keepalive(in, ttl) == etcd::Error::ok) ETCD_CHECK(ttl >= 0);
  (void)etcd::parse_reply(in);
  etcd::Member m;
  (void)etcd::parse_member("node-a", in, 1, m);
  return 0;
}
