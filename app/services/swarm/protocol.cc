#include "app/services/swarm/protocol.hh"

#include <algorithm>
#include <cstring>
#include <iterator>

namespace cw::swarm::proto {
namespace {

uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
void put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

constexpr std::string_view kErrorNames[] = {
    "ok", "bad_protocol", "too_long", "bad_length", "bad_block", "not_negotiated", "bad_extension"};
static_assert(std::size(kErrorNames) == static_cast<size_t>(Error::kCount));

Result need(size_t n) {
  return {Status::need_more, n, Error::ok};
}
Result fail(Error e) {
  return {Status::error, 0, e};
}

// The message lengths (id included) an id allows: [lo, hi]; lo == hi for a fixed size.
struct Range {
  size_t lo;
  size_t hi;
  bool negotiated;
};
Range range_of(uint8_t id, const Limits& lim) {
  switch (id) {
    case kChoke:
    case kUnchoke:
    case kInterested:
    case kNotInterested:
      return {1, 1, true};
    case kHaveAll:
    case kHaveNone:
      return {1, 1, lim.fast};
    case kHave:
      return {5, 5, true};
    case kSuggest:
    case kAllowedFast:
      return {5, 5, lim.fast};
    case kRequest:
    case kCancel:
      return {13, 13, true};
    case kReject:
      return {13, 13, lim.fast};
    case kPort:
      return {3, 3, true};
    case kPiece:
      return {10, 9 + size_t{lim.max_block}, true};  // a block of at least one byte
    case kBitfield:
      return {2, 1 + lim.max_bitfield, true};  // a torrent has at least one piece
    case kExtended:
      return {2, 1 + lim.max_extended, lim.extended};
    default:
      return {1, 1 + lim.max_unknown, true};
  }
}

size_t put_header(std::span<uint8_t> out, size_t size, MsgId id) {
  if (out.size() < size) return 0;
  put32(out.data(), static_cast<uint32_t>(size - kLengthSize));
  out[kLengthSize] = id;
  return size;
}

}  // namespace

std::string_view error_name(Error e) {
  const auto i = static_cast<size_t>(e);
  return i < std::size(kErrorNames) ? kErrorNames[i] : "?";
}

void Handshake::set(bool ext, bool fst, bool dht_) {
  reserved[5] = static_cast<uint8_t>((reserved[5] & ~0x10) | (ext ? 0x10 : 0));
  reserved[7] = static_cast<uint8_t>((reserved[7] & ~0x05) | (fst ? 0x04 : 0) | (dht_ ? 0x01 : 0));
}

Result parse_handshake(Bytes in, Handshake& out) {
  // The protocol string is checked as soon as its bytes arrive: a peer that speaks something
  // else is rejected without waiting for 68 bytes.
  const size_t have = std::min(in.size(), 1 + kProtocol.size());
  if (have > 0 && in[0] != kProtocol.size()) return fail(Error::bad_protocol);
  if (have > 1 && std::memcmp(in.data() + 1, kProtocol.data(), have - 1) != 0) {
    return fail(Error::bad_protocol);
  }
  if (in.size() < kHandshakeSize) return need(kHandshakeSize - in.size());
  const uint8_t* p = in.data() + 1 + kProtocol.size();
  std::memcpy(out.reserved.data(), p, 8);
  std::memcpy(out.info_hash.data(), p + 8, 20);
  std::memcpy(out.peer_id.data(), p + 28, 20);
  return {Status::ok, kHandshakeSize, Error::ok};
}

void write_handshake(std::span<uint8_t, kHandshakeSize> out, const Handshake& h) {
  uint8_t* p = out.data();
  *p++ = static_cast<uint8_t>(kProtocol.size());
  std::memcpy(p, kProtocol.data(), kProtocol.size());
  p += kProtocol.size();
  std::memcpy(p, h.reserved.data(), 8);
  std::memcpy(p + 8, h.info_hash.data(), 20);
  std::memcpy(p + 28, h.peer_id.data(), 20);
}

Result parse_message(Bytes in, const Limits& lim, Message& out) {
  out = Message{};
  if (in.size() < kLengthSize) return need(kLengthSize - in.size());
  const size_t len = be32(in.data());
  if (len == 0) {
    out.keep_alive = true;
    return {Status::ok, kLengthSize, Error::ok};
  }
  const size_t cap = std::max(
      {9 + size_t{lim.max_block}, 1 + lim.max_bitfield, 1 + lim.max_extended, 1 + lim.max_unknown});
  if (len > cap) return fail(Error::too_long);
  if (in.size() < kLengthSize + 1) return need(1);
  out.id = in[kLengthSize];
  const Range r = range_of(out.id, lim);
  if (!r.negotiated) return fail(Error::not_negotiated);
  if (len > r.hi) return fail(r.lo == r.hi ? Error::bad_length : Error::too_long);
  if (len < r.lo) return fail(Error::bad_length);
  if (in.size() < kLengthSize + len) return need(kLengthSize + len - in.size());

  const uint8_t* p = in.data() + kLengthSize + 1;
  const Bytes body = in.subspan(kLengthSize + 1, len - 1);
  switch (out.id) {
    case kChoke:
    case kUnchoke:
    case kInterested:
    case kNotInterested:
    case kHaveAll:
    case kHaveNone:
      break;
    case kHave:
    case kSuggest:
    case kAllowedFast:
      out.index = be32(p);
      break;
    case kRequest:
    case kCancel:
    case kReject:
      out.index = be32(p);
      out.begin = be32(p + 4);
      out.length = be32(p + 8);
      if (out.length == 0 || out.length > lim.max_block) return fail(Error::bad_block);
      break;
    case kPiece:
      out.index = be32(p);
      out.begin = be32(p + 4);
      out.payload = body.subspan(8);
      break;
    case kPort:
      out.port = static_cast<uint16_t>(p[0] << 8 | p[1]);
      break;
    case kBitfield:
      out.payload = body;
      break;
    case kExtended:
      out.ext_id = p[0];
      out.payload = body.subspan(1);
      break;
    default:
      out.known = false;
      out.payload = body;
      break;
  }
  return {Status::ok, kLengthSize + len, Error::ok};
}

size_t write_keep_alive(std::span<uint8_t> out) {
  if (out.size() < kLengthSize) return 0;
  put32(out.data(), 0);
  return kLengthSize;
}

size_t write_simple(std::span<uint8_t> out, MsgId id) {
  return put_header(out, kLengthSize + 1, id);
}

size_t write_index(std::span<uint8_t> out, MsgId id, uint32_t index) {
  const size_t n = put_header(out, kLengthSize + 5, id);
  if (n != 0) put32(out.data() + 5, index);
  return n;
}

size_t write_block_ref(std::span<uint8_t> out, MsgId id, uint32_t index, uint32_t begin,
                       uint32_t length) {
  const size_t n = put_header(out, kLengthSize + 13, id);
  if (n == 0) return 0;
  put32(out.data() + 5, index);
  put32(out.data() + 9, begin);
  put32(out.data() + 13, length);
  return n;
}

size_t write_bitfield(std::span<uint8_t> out, Bytes bits) {
  const size_t n = put_header(out, kLengthSize + 1 + bits.size(), kBitfield);
  if (n != 0) std::memcpy(out.data() + 5, bits.data(), bits.size());
  return n;
}

size_t write_piece_header(std::span<uint8_t> out, uint32_t index, uint32_t begin,
                          uint32_t block_len) {
  if (out.size() < kPieceHeaderSize) return 0;
  put32(out.data(), 9 + block_len);
  out[kLengthSize] = kPiece;
  put32(out.data() + 5, index);
  put32(out.data() + 9, begin);
  return kPieceHeaderSize;
}

size_t write_piece(std::span<uint8_t> out, uint32_t index, uint32_t begin, Bytes block) {
  if (out.size() < kPieceHeaderSize + block.size()) return 0;
  write_piece_header(out, index, begin, static_cast<uint32_t>(block.size()));
  std::memcpy(out.data() + kPieceHeaderSize, block.data(), block.size());
  return kPieceHeaderSize + block.size();
}

size_t write_port(std::span<uint8_t> out, uint16_t port) {
  const size_t n = put_header(out, kLengthSize + 3, kPort);
  if (n == 0) return 0;
  out[5] = static_cast<uint8_t>(port >> 8);
  out[6] = static_cast<uint8_t>(port);
  return n;
}

size_t write_extended(std::span<uint8_t> out, uint8_t ext_id, Bytes payload) {
  const size_t n = put_header(out, kLengthSize + 2 + payload.size(), kExtended);
  if (n == 0) return 0;
  out[5] = ext_id;
  std::memcpy(out.data() + 6, payload.data(), payload.size());
  return n;
}

Error parse_ext_handshake(Bytes payload, std::span<bencode::Token> toks, ExtHandshake& out) {
  using bencode::Type;
  out = ExtHandshake{};
  bencode::Doc doc;
  const bencode::Limits lim{.max_depth = 8, .max_string = 1024, .strict = false};
  if (bencode::decode(payload, toks, lim, doc) != bencode::Error::ok || !doc.is(0, Type::dict)) {
    return Error::bad_extension;
  }
  // An integer value in [lo, hi], or absent (then `dflt`); anything else is an error.
  bool ok = true;
  const auto integer = [&](uint32_t d, std::string_view key, int64_t lo, int64_t hi, int64_t dflt) {
    const uint32_t v = doc.find(d, key);
    if (v == bencode::kNone) return dflt;
    if (!doc.is(v, Type::integer) || doc.at(v).value < lo || doc.at(v).value > hi) {
      ok = false;
      return dflt;
    }
    return doc.at(v).value;
  };
  if (const uint32_t m = doc.find(0, "m"); m != bencode::kNone) {
    if (!doc.is(m, Type::dict)) return Error::bad_extension;
    out.ut_metadata = static_cast<uint8_t>(integer(m, "ut_metadata", 0, 255, 0));
    out.ut_pex = static_cast<uint8_t>(integer(m, "ut_pex", 0, 255, 0));
  }
  out.port = static_cast<uint16_t>(integer(0, "p", 0, 65535, 0));
  out.reqq = static_cast<uint32_t>(integer(0, "reqq", 0, UINT32_MAX, 0));
  out.metadata_size = integer(0, "metadata_size", 0, INT64_MAX, -1);
  if (const uint32_t v = doc.find(0, "v"); v != bencode::kNone) {
    if (!doc.is(v, Type::string)) return Error::bad_extension;
    out.client = doc.str(v);
  }
  return ok ? Error::ok : Error::bad_extension;
}

size_t write_ext_handshake(std::span<uint8_t> out, const ExtHandshake& h) {
  // Keys in ascending order: m < metadata_size < p < reqq < v; ut_metadata < ut_pex.
  bencode::Writer w(out);
  w.dict().string("m").dict();
  if (h.ut_metadata != 0) w.string("ut_metadata").integer(h.ut_metadata);
  if (h.ut_pex != 0) w.string("ut_pex").integer(h.ut_pex);
  w.end();
  if (h.metadata_size >= 0) w.string("metadata_size").integer(h.metadata_size);
  if (h.port != 0) w.string("p").integer(h.port);
  if (h.reqq != 0) w.string("reqq").integer(h.reqq);
  if (!h.client.empty()) w.string("v").string(h.client);
  w.end();
  return w.ok() ? w.size() : 0;
}

}  // namespace cw::swarm::proto
