// libFuzzer target: the memcached text protocol parser on arbitrary bytes, pipelined, with a
// small item limit so swallows happen. Invariants: tests/fuzz/kv_fuzz_check.hh. A get
// request's keys also encode into VALUE lines that fit the bound the service sizes for.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/kv_fuzz_check.hh"

namespace kp = cw::kv::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  kp::Limits limits;
  limits.max_value = 64;
  kp::fuzz::check_stream(in, limits);
  const kp::Parsed p = kp::parse(in, limits);
  if (p.status == kp::Status::ok && p.req.cmd == kp::Cmd::gets) {
    char buf[6 + kp::kMaxKeyLen + 1 + 10 + 1 + 20 + 1 + 20 + 2];  // VALUE k flags len cas
    const uint64_t cas = UINT64_MAX;
    for (std::string_view k : p.req.keys) {
      const size_t n = kp::encode_value_header(buf, k, UINT32_MAX, SIZE_MAX, &cas);
      KV_CHECK(n > 0 && buf[n - 2] == '\r' && buf[n - 1] == '\n');
    }
  }
  return 0;
}
