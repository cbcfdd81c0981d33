// libFuzzer target: the peer wire codec (app/services/swarm/protocol.hh). The first byte picks
// the negotiated extensions; the rest is read as a handshake and, from the start, as a stream
// of messages. Each accepted message lies inside the input, writes back byte for byte with
// the writers, and any shorter prefix of it asks for more rather than parsing; an extension
// handshake that parses writes and parses back to the same fields.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "app/services/swarm/protocol.hh"
#include "tests/fuzz/swarm_fuzz_check.hh"

namespace wp = cw::swarm::proto;

namespace {

// The message written again from its fields; 0 if its id has no writer (unknown ids).
size_t rewrite(const wp::Message& m, std::span<uint8_t> out) {
  const auto id = static_cast<wp::MsgId>(m.id);
  if (m.keep_alive) return wp::write_keep_alive(out);
  if (!m.known) return 0;
  switch (id) {
    case wp::kHave:
    case wp::kSuggest:
    case wp::kAllowedFast:
      return wp::write_index(out, id, m.index);
    case wp::kRequest:
    case wp::kCancel:
    case wp::kReject:
      return wp::write_block_ref(out, id, m.index, m.begin, m.length);
    case wp::kPiece:
      return wp::write_piece(out, m.index, m.begin, m.payload);
    case wp::kBitfield:
      return wp::write_bitfield(out, m.payload);
    case wp::kPort:
      return wp::write_port(out, m.port);
    case wp::kExtended:
      return wp::write_extended(out, m.ext_id, m.payload);
    default:
      return wp::write_simple(out, id);
  }
}

void check_ext_handshake(wp::Bytes payload) {
  static std::array<cw::swarm::bencode::Token, 256> toks;
  wp::ExtHandshake h;
  if (wp::parse_ext_handshake(payload, toks, h) != wp::Error::ok) return;
  std::array<uint8_t, 2048> out;
  const size_t n = wp::write_ext_handshake(out, h);
  SWARM_CHECK(n > 0);
  wp::ExtHandshake h2;
  SWARM_CHECK(wp::parse_ext_handshake(wp::Bytes(out).first(n), toks, h2) == wp::Error::ok);
  SWARM_CHECK(h2.ut_metadata == h.ut_metadata && h2.ut_pex == h.ut_pex && h2.port == h.port);
  SWARM_CHECK(h2.reqq == h.reqq && h2.metadata_size == h.metadata_size && h2.client == h.client);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const wp::Limits lim{.max_bitfield = 1024,
                       .max_extended = 4096,
                       .max_unknown = 64,
                       .fast = (data[0] & 1) != 0,
                       .extended = (data[0] & 2) != 0};
  wp::Bytes in(data + 1, size - 1);

  wp::Handshake h;
  const wp::Result hr = wp::parse_handshake(in, h);
  if (hr.status == wp::Status::ok) {
    std::array<uint8_t, wp::kHandshakeSize> out;
    wp::write_handshake(out, h);
    SWARM_CHECK(std::memcmp(out.data(), in.data(), out.size()) == 0);
  } else if (hr.status == wp::Status::need_more) {
    SWARM_CHECK(in.size() + hr.n == wp::kHandshakeSize);
  }

  static std::array<uint8_t, 9 + wp::kMaxBlock + 4096> out;
  while (!in.empty()) {
    wp::Message m;
    const wp::Result r = wp::parse_message(in, lim, m);
    if (r.status == wp::Status::need_more) {
      SWARM_CHECK(r.n > 0);
      break;
    }
    if (r.status == wp::Status::error) break;
    SWARM_CHECK(r.n >= wp::kLengthSize && r.n <= in.size());
    if (!m.payload.empty()) {
      SWARM_CHECK(m.payload.data() >= in.data() &&
                  m.payload.data() + m.payload.size() == in.data() + r.n);
    }
    const size_t n = rewrite(m, out);
    if (m.known) SWARM_CHECK(n == r.n && std::memcmp(out.data(), in.data(), n) == 0);
    wp::Message cut;
    const wp::Result c = wp::parse_message(in.first(r.n - 1), lim, cut);
    SWARM_CHECK(c.status == wp::Status::need_more && c.n >= 1);
    if (m.id == wp::kExtended && m.ext_id == 0 && !m.keep_alive) check_ext_handshake(m.payload);
    in = in.subspan(r.n);
  }
  return 0;
}
