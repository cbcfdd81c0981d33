// libFuzzer target: the native codec on arbitrary bytes. Invariants: a decoded frame never
// claims bytes beyond the input, its payload lies inside it, and re-encoding an ok message
// gives back exactly the bytes that were decoded (the codec is lossless and canonical).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "app/protocol/native.hh"

namespace nt = cw::proto::native;

#define CHECK(c)            \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  const nt::Decoded d = nt::decode(in);
  if (d.status != nt::Status::ok) {
    CHECK(d.frame_len == 0 && d.payload.empty());
    if (d.status == nt::Status::bad_magic) CHECK(size >= 1);
    if (d.status != nt::Status::bad_magic && d.status != nt::Status::need_more) {
      CHECK(size >= nt::kHeaderSize);  // answerable: the header was whole
      uint8_t err[nt::kErrorSize];
      CHECK(nt::encode_error(err, d.header, nt::error_for(d.status)) == nt::kErrorSize);
      const nt::Decoded e = nt::decode({err, nt::kErrorSize});
      CHECK(e.status == nt::Status::ok && e.header.kind == nt::Kind::error);
      CHECK(e.header.request_id == d.header.request_id);
    }
    return 0;
  }
  CHECK(d.frame_len <= size);
  CHECK(d.frame_len == nt::kHeaderSize + d.payload.size());
  CHECK(d.payload.size() <= nt::kMaxPayload);
  CHECK(d.payload.data() == data + nt::kHeaderSize);
  // Round trip: the frame re-encodes to the same bytes.
  static uint8_t buf[nt::kHeaderSize + nt::kMaxPayload];
  CHECK(nt::encode_message(buf, d.header, d.payload) == d.frame_len);
  CHECK(std::memcmp(buf, data, d.frame_len) == 0);
  return 0;
}
