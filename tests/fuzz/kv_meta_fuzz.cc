// libFuzzer target: the memcached meta protocol. The first byte picks the command (mg ms md
// ma mn me) so the rest of the input explores keys, flags and values. Invariants:
// tests/fuzz/kv_fuzz_check.hh; an ok request's return flags, echoed in request order as a
// service does, encode into a reply that ends its line.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/kv_fuzz_check.hh"

namespace kp = cw::kv::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr char kCmds[] = "gsdane";
  std::string in = "m";
  in += kCmds[data[0] % 6];
  in += ' ';
  in.append(reinterpret_cast<const char*>(data + 1), size - 1);
  kp::fuzz::check_stream(in);
  const kp::Parsed p = kp::parse(in);
  if (p.status != kp::Status::ok) return 0;
  kp::MetaRet ret[kp::kMaxMetaFlags];
  size_t n = 0;
  for (size_t i = 0; i < p.req.meta.count; ++i) {
    const char f = p.req.meta.order[i];
    if (f == 'O')
      ret[n++] = kp::MetaRet::str('O', p.req.meta.opaque);
    else if (f == 'k')
      ret[n++] = kp::MetaRet::str('k', p.req.key);
    else if (f == 't')
      ret[n++] = kp::MetaRet::snum('t', p.req.meta.ttl);
    else if (f == 'c')
      ret[n++] = kp::MetaRet::num('c', p.req.meta.compare_cas);
  }
  static char out[1 << 20];
  const size_t len = kp::encode_meta_value(out, p.req.data, {ret, n});
  KV_CHECK(len > 0 && len >= p.req.data.size() + 7 && out[len - 1] == '\n');
  return 0;
}
