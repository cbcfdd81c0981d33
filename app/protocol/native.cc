#include "app/protocol/native.hh"

#include <cstring>

#include "app/protocol/be.hh"

namespace cw::proto::native {

Decoded decode(std::span<const uint8_t> bytes) {
  Decoded d;
  const auto fail = [&d](Status s) {
    d.status = s;
    return d;
  };
  const uint8_t* p = bytes.data();
  const size_t n = bytes.size();
  // Refuse a foreign stream on its first byte rather than waiting for a whole header.
  if (n >= 1 && p[0] != uint8_t(kMagic >> 8)) return fail(Status::bad_magic);
  if (n >= 2 && p[1] != uint8_t(kMagic & 0xFF)) return fail(Status::bad_magic);
  if (n < kHeaderSize) return d;  // need_more, header not valid

  d.header.kind = Kind(p[3]);
  d.header.service = load_be<uint16_t>(p + 4);
  d.header.flags = load_be<uint16_t>(p + 6);
  d.header.request_id = load_be<uint64_t>(p + 8);
  d.header.payload_len = load_be<uint32_t>(p + 16);
  const uint32_t reserved = load_be<uint32_t>(p + 20);

  if (p[2] != kVersion) return fail(Status::bad_version);
  if (p[3] > uint8_t(Kind::error)) return fail(Status::bad_kind);
  if (d.header.flags != 0 || reserved != 0) return fail(Status::bad_reserved);
  if (d.header.payload_len > kMaxPayload) return fail(Status::too_large);
  const uint32_t frame = kHeaderSize + d.header.payload_len;
  if (n < frame) return d;  // need_more, header valid

  d.status = Status::ok;
  d.payload = bytes.subspan(kHeaderSize, d.header.payload_len);
  d.frame_len = frame;
  return d;
}

void encode_header(uint8_t* out, const Header& h) {
  store_be<uint16_t>(out, kMagic);
  out[2] = kVersion;
  out[3] = uint8_t(h.kind);
  store_be<uint16_t>(out + 4, h.service);
  store_be<uint16_t>(out + 6, h.flags);
  store_be<uint64_t>(out + 8, h.request_id);
  store_be<uint32_t>(out + 16, h.payload_len);
  store_be<uint32_t>(out + 20, 0);
}

uint32_t encode_message(uint8_t* out, Header h, std::span<const uint8_t> payload) {
  h.payload_len = uint32_t(payload.size());
  encode_header(out, h);
  if (!payload.empty()) std::memcpy(out + kHeaderSize, payload.data(), payload.size());
  return kHeaderSize + h.payload_len;
}

uint32_t encode_error(uint8_t* out, const Header& req, ErrorCode code) {
  Header h;
  h.kind = Kind::error;
  h.service = req.service;
  h.request_id = req.request_id;
  h.payload_len = 2;
  encode_header(out, h);
  store_be<uint16_t>(out + kHeaderSize, uint16_t(code));
  return kErrorSize;
}

ErrorCode error_for(Status s) {
  switch (s) {
    case Status::bad_version:
      return ErrorCode::bad_version;
    case Status::bad_kind:
      return ErrorCode::bad_kind;
    case Status::too_large:
      return ErrorCode::too_large;
    case Status::bad_reserved:
      return ErrorCode::bad_reserved;
    case Status::need_more:
      return ErrorCode::truncated;
    case Status::ok:
    case Status::bad_magic:
      break;
  }
  // Not answerable: callers check first. Map to something harmless rather than assert.
  return ErrorCode::truncated;
}

}  // namespace cw::proto::native
