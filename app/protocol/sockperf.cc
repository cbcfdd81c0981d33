#include "app/protocol/sockperf.hh"

#include "app/protocol/be.hh"

namespace cw::proto::sockperf {

Frame parse(std::span<const uint8_t> bytes) {
  Frame f;
  if (bytes.size() < kHeaderSize) return f;  // need_more
  const uint8_t* p = bytes.data();
  f.header.seq = load_be<uint64_t>(p);
  f.header.flags = load_be<uint16_t>(p + 8);
  f.header.len = load_be<uint32_t>(p + 10);
  if (f.header.len < kHeaderSize || f.header.len > kMaxMessage) {
    f.status = Status::bad_length;
  } else if (bytes.size() >= f.header.len) {
    f.status = Status::ok;
    f.frame_len = f.header.len;
  }
  return f;
}

void encode_header(uint8_t* out, const Header& h) {
  store_be<uint64_t>(out, h.seq);
  store_be<uint16_t>(out + 8, h.flags);
  store_be<uint32_t>(out + 10, h.len);
}

void make_reply(uint8_t* msg) {
  // flags is big-endian at offset 8: the client bit (0x1) lives in its low byte, offset 9.
  msg[9] &= uint8_t(~kClient);
}

}  // namespace cw::proto::sockperf
