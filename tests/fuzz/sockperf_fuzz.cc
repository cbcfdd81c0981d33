// libFuzzer target: the sockperf codec on arbitrary bytes. Invariants: an ok frame lies
// within the input and within the protocol's limits; the header re-encodes to its bytes;
// make_reply changes only the client bit; walking a buffer frame by frame always advances.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "app/protocol/sockperf.hh"

namespace sp = cw::proto::sockperf;

#define CHECK(c)            \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t off = 0;
  while (off < size) {
    const sp::Frame f = sp::parse({data + off, size - off});
    if (f.status != sp::Status::ok) {
      CHECK(f.frame_len == 0);
      if (f.status == sp::Status::bad_length) {
        CHECK(size - off >= sp::kHeaderSize);
        CHECK(f.header.len < sp::kHeaderSize || f.header.len > sp::kMaxMessage);
      }
      break;
    }
    CHECK(f.frame_len >= sp::kHeaderSize && f.frame_len <= sp::kMaxMessage);
    CHECK(f.frame_len <= size - off);
    uint8_t h[sp::kHeaderSize];
    sp::encode_header(h, f.header);
    CHECK(std::memcmp(h, data + off, sp::kHeaderSize) == 0);
    sp::make_reply(h);
    const sp::Frame r = sp::parse({h, sp::kHeaderSize});
    CHECK(r.header.seq == f.header.seq && r.header.len == f.header.len);
    CHECK(r.header.flags == (f.header.flags & ~sp::kClient));
    CHECK(!sp::wants_reply(r.header));  // a reply never asks for a reply: no ping loops
    off += f.frame_len;
  }
  return 0;
}
