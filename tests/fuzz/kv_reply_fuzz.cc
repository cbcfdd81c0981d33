// libFuzzer target: corewire-bench's memcached reply parser (bench/corewire_bench/kv_codec)
// and UDP reassembly (kv_udp). Elements parsed one after another stay inside the input,
// every prefix of a whole element needs more (never a different answer), and following them
// as replies to gets and sets of both protocols keeps hits <= keys. With the mode's top bit
// the input is a run of datagrams (2-byte length each) fed to a small reassembly: its stream
// never outgrows the buffer and parses the same way.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "bench/corewire_bench/kv_codec.hh"
#include "bench/corewire_bench/kv_udp.hh"

namespace kv = cw::bench::kv;

#define REPLY_CHECK(c)                                                           \
  do {                                                                           \
    if (!(c)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

namespace {

struct Mode {
  uint32_t max_value;
  kv::KvProto proto;
  bool get;
  uint32_t nkeys;
};

// Parses and follows the elements at the start of in; returns the bytes they took.
size_t follow_all(const Mode& m, std::span<const uint8_t> in, kv::ReplyState& st) {
  size_t used = 0;
  while (!in.empty()) {
    const kv::Element e = kv::parse_element(in, m.max_value);
    if (e.kind == kv::Elem::need_more) {
      REPLY_CHECK(e.need == 0 || e.need > in.size());
      break;
    }
    if (e.kind == kv::Elem::bad) break;
    REPLY_CHECK(e.consumed > 0 && e.consumed <= in.size());
    // Every proper prefix of a whole element needs more.
    for (uint32_t n : {e.consumed - 1, e.consumed / 2, 1u}) {
      if (n >= e.consumed) continue;
      const kv::Element p = kv::parse_element(in.first(n), m.max_value);
      REPLY_CHECK(p.kind == kv::Elem::need_more);
      REPLY_CHECK(p.need == 0 || p.need == e.consumed);
    }
    const kv::Step s = kv::follow(m.proto, m.get, m.nkeys, st, e.kind);
    REPLY_CHECK(st.hits <= m.nkeys);
    if (s == kv::Step::bad) break;
    if (s == kv::Step::done) st = {};
    in = in.subspan(e.consumed);
    used += e.consumed;
  }
  return used;
}

// Datagrams, each a 2-byte big-endian length then its bytes, into a 2-slot reassembly.
void reassemble(const Mode& m, std::span<const uint8_t> in) {
  kv::UdpReassembly ra(2, 4096);
  bool evicted = false;
  for (uint64_t req = 0; in.size() >= 2; ++req) {
    const size_t n = std::min<size_t>(size_t(in[0] << 8 | in[1]), in.size() - 2);
    const kv::UdpReply d = kv::parse_udp_reply(in.subspan(2, n));
    in = in.subspan(2 + n);
    kv::UdpReassembly::Slot& s = ra.slot_for(d.request_id & 3, evicted);
    const auto a = ra.add(s, d);
    REPLY_CHECK(s.have <= ra.cap());
    if (a == kv::UdpReassembly::Add::bad) {
      ra.release(s);
    } else if (a == kv::UdpReassembly::Add::message) {
      const size_t used = follow_all(m, {s.buf.data(), s.have}, s.st);
      REPLY_CHECK(used <= s.have);
      ra.consume(s, uint32_t(used));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // First byte: the value limit and how the elements are followed.
  const uint8_t mode = data[0];
  const Mode m{1u << (mode & 15), mode & 16 ? kv::KvProto::meta : kv::KvProto::text,
               (mode & 32) != 0, mode & 64 ? 3u : 1u};
  const std::span<const uint8_t> in(data + 1, size - 1);
  if (mode & 128) {
    reassemble(m, in);
  } else {
    kv::ReplyState st;
    follow_all(m, in, st);
  }
  const kv::UdpReply u = kv::parse_udp_reply({data, size});
  if (u.ok) REPLY_CHECK(size >= 8 && u.seq < u.total && u.payload.size() == size - 8);
  return 0;
}
