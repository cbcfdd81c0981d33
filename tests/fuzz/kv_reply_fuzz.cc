// libFuzzer target: corewire-bench's memcached reply parser (bench/corewire_bench/kv_codec).
// Elements parsed one after another stay inside the input, every prefix of a whole element
// needs more (never a different answer), and following them as replies to gets and sets of
// both protocols never leaves the state machine's rules (hits <= keys).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "bench/corewire_bench/kv_codec.hh"

namespace kv = cw::bench::kv;

#define REPLY_CHECK(c)                                                           \
  do {                                                                           \
    if (!(c)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // First byte: the value limit and how the elements are followed.
  const uint8_t mode = data[0];
  const uint32_t max_value = 1u << (mode & 15);
  const kv::KvProto proto = mode & 16 ? kv::KvProto::meta : kv::KvProto::text;
  const bool get = mode & 32;
  const uint32_t nkeys = mode & 64 ? 3 : 1;
  std::span<const uint8_t> in(data + 1, size - 1);
  kv::ReplyState st;
  while (!in.empty()) {
    const kv::Element e = kv::parse_element(in, max_value);
    if (e.kind == kv::Elem::need_more) {
      REPLY_CHECK(e.need == 0 || e.need > in.size());
      break;
    }
    if (e.kind == kv::Elem::bad) break;
    REPLY_CHECK(e.consumed > 0 && e.consumed <= in.size());
    // Every proper prefix of a whole element needs more (or, past the line limit, is bad).
    for (uint32_t n : {e.consumed - 1, e.consumed / 2, 1u}) {
      if (n >= e.consumed) continue;
      const kv::Element p = kv::parse_element(in.first(n), max_value);
      REPLY_CHECK(p.kind == kv::Elem::need_more);
      REPLY_CHECK(p.need == 0 || p.need == e.consumed);
    }
    const kv::Step s = kv::follow(proto, get, nkeys, st, e.kind);
    REPLY_CHECK(st.hits <= nkeys);
    if (s == kv::Step::bad) break;
    if (s == kv::Step::done) st = {};
    in = in.subspan(e.consumed);
  }
  const kv::UdpReply u = kv::parse_udp_reply({data, size});
  if (u.ok) REPLY_CHECK(size >= 8 && u.seq < u.total && u.payload.size() == size - 8);
  return 0;
}
