// libFuzzer target: tracker announce replies and requests (app/services/swarm/tracker.hh).
// A reply the parser accepts has its interval in range, at most the span's peers, none on
// port 0, and a failure text inside the input; written back in the compact form it parses
// to the same interval and peers. The input as a URL (after 40 bytes of hashes) gives a
// query that starts with it and carries only URL-safe bytes after it.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "app/services/swarm/bencode.hh"
#include "app/services/swarm/tracker.hh"
#include "tests/fuzz/swarm_fuzz_check.hh"

namespace tr = cw::swarm::tracker;
namespace be = cw::swarm::bencode;

namespace {

void check_query(const uint8_t* data, size_t size) {
  if (size < 40) return;
  static std::array<char, 4096> out;
  tr::Announce a;
  a.info_hash = {data, 20};
  a.peer_id = {data + 20, 20};
  a.port = uint16_t(size);
  a.left = size;
  a.event = tr::Event(size % 4);
  const std::string_view url(reinterpret_cast<const char*>(data + 40), size - 40);
  const size_t n = tr::write_query(url, a, out);
  if (n == 0) return;
  SWARM_CHECK(n > url.size() && std::string_view(out.data(), url.size()) == url);
  for (size_t i = url.size() + 1; i < n; ++i) {
    const char c = out[i];
    SWARM_CHECK((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                c == '-' || c == '.' || c == '_' || c == '~' || c == '%' || c == '&' || c == '=');
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::array<be::Token, 512> toks;
  static std::array<tr::PeerAddr, 8> peers;
  static std::array<tr::PeerAddr, 8> peers2;
  static std::array<uint8_t, 8 * 6 + 128> buf;
  check_query(data, size);
  tr::Reply r;
  if (tr::parse_reply({data, size}, toks, peers, r) != tr::Error::ok) return 0;
  if (r.failed) {
    const auto* f = reinterpret_cast<const uint8_t*>(r.failure.data());
    SWARM_CHECK(f >= data && f + r.failure.size() <= data + size);
    return 0;
  }
  SWARM_CHECK(r.interval >= 0 && r.interval <= tr::kMaxInterval);
  SWARM_CHECK(r.min_interval >= -1 && r.min_interval <= tr::kMaxInterval);
  SWARM_CHECK(r.peers <= peers.size());
  std::array<uint8_t, 8 * 6> compact{};
  for (size_t i = 0; i < r.peers; ++i) {
    SWARM_CHECK(peers[i].port_be != 0);
    __builtin_memcpy(compact.data() + 6 * i, &peers[i].addr_be, 4);
    __builtin_memcpy(compact.data() + 6 * i + 4, &peers[i].port_be, 2);
  }
  be::Writer w(buf);
  w.dict().string("interval").integer(r.interval);
  w.string("peers").string(be::Bytes(compact.data(), 6 * r.peers)).end();
  SWARM_CHECK(w.ok());
  tr::Reply r2;
  SWARM_CHECK(tr::parse_reply({buf.data(), w.size()}, toks, peers2, r2) == tr::Error::ok);
  SWARM_CHECK(!r2.failed && r2.interval == r.interval && r2.peers == r.peers && r2.skipped == 0);
  for (size_t i = 0; i < r.peers; ++i) SWARM_CHECK(peers2[i] == peers[i]);
  return 0;
}
