// The peer wire codec against BEP 3/6/10: every message written and parsed back; a stream of
// them split at every byte parses the same, with need_more asking for no more than the rest
// of the message; every wrong fixed size, oversized length and unnegotiated extension an
// error as soon as the prefix and id are in; the extension handshake both ways.
#include "app/services/swarm/protocol.hh"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace cw::swarm::proto {
namespace {

using Buf = std::vector<uint8_t>;

Bytes B(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

const Limits kAll{.fast = true, .extended = true};

TEST(Handshake, RoundTrip) {
  Handshake h;
  for (uint8_t i = 0; i < 20; ++i) {
    h.info_hash[i] = i;
    h.peer_id[i] = static_cast<uint8_t>(100 + i);
  }
  h.set(true, true, false);
  EXPECT_TRUE(h.extended());
  EXPECT_TRUE(h.fast());
  EXPECT_FALSE(h.dht());
  std::array<uint8_t, kHandshakeSize> out{};
  write_handshake(out, h);
  EXPECT_EQ(out[0], 19);
  EXPECT_EQ(std::string(out.begin() + 1, out.begin() + 20), "BitTorrent protocol");
  EXPECT_EQ(out[25], 0x10);
  EXPECT_EQ(out[27], 0x04);
  for (size_t cut = 0; cut < kHandshakeSize; ++cut) {
    Handshake got;
    const Result r = parse_handshake(Bytes(out).first(cut), got);
    ASSERT_EQ(r.status, Status::need_more) << cut;
    EXPECT_EQ(r.n, kHandshakeSize - cut);
  }
  Handshake got;
  const Result r = parse_handshake(out, got);
  ASSERT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.n, kHandshakeSize);
  EXPECT_EQ(got.info_hash, h.info_hash);
  EXPECT_EQ(got.peer_id, h.peer_id);
  EXPECT_EQ(got.reserved, h.reserved);
}

TEST(Handshake, WrongProtocolEarly) {
  Handshake got;
  EXPECT_EQ(parse_handshake(B("\x12"), got).error, Error::bad_protocol);
  EXPECT_EQ(parse_handshake(B("\x13"
                              "BitTorrent  "),
                            got)
                .error,
            Error::bad_protocol);
  EXPECT_EQ(parse_handshake(B("GET / HTTP/1.1\r\n"), got).error, Error::bad_protocol);
  EXPECT_EQ(parse_handshake(B("\x13"
                              "BitTorr"),
                            got)
                .status,
            Status::need_more);
}

// Every message kind, concatenated.
Buf all_messages() {
  Buf s(4096);
  std::span<uint8_t> o(s);
  size_t n = 0;
  const auto add = [&](size_t k) {
    EXPECT_NE(k, 0u);
    n += k;
  };
  const std::array<uint8_t, 3> bits = {0xff, 0x0f, 0x80};
  std::vector<uint8_t> block(kMaxBlock);
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<uint8_t>(i);
  const std::array<uint8_t, 5> ext = {'d', '1', ':', 'x', 'e'};
  add(write_keep_alive(o.subspan(n)));
  add(write_simple(o.subspan(n), kChoke));
  add(write_simple(o.subspan(n), kUnchoke));
  add(write_simple(o.subspan(n), kInterested));
  add(write_simple(o.subspan(n), kNotInterested));
  add(write_index(o.subspan(n), kHave, 0xdeadbeef));
  add(write_bitfield(o.subspan(n), bits));
  add(write_block_ref(o.subspan(n), kRequest, 1, 16384, 16384));
  s.resize(n + 20000);
  o = s;
  add(write_piece(o.subspan(n), 2, 32768, block));
  add(write_block_ref(o.subspan(n), kCancel, 3, 0, 100));
  add(write_port(o.subspan(n), 6881));
  add(write_index(o.subspan(n), kSuggest, 4));
  add(write_simple(o.subspan(n), kHaveAll));
  add(write_simple(o.subspan(n), kHaveNone));
  add(write_block_ref(o.subspan(n), kReject, 5, 16384, 1));
  add(write_index(o.subspan(n), kAllowedFast, 6));
  add(write_extended(o.subspan(n), 0, ext));
  s.resize(n);
  return s;
}

std::vector<Message> parse_all(Bytes in) {
  std::vector<Message> out;
  while (!in.empty()) {
    Message m;
    const Result r = parse_message(in, kAll, m);
    EXPECT_EQ(r.status, Status::ok);
    if (r.status != Status::ok) break;
    out.push_back(m);
    in = in.subspan(r.n);
  }
  return out;
}

TEST(Wire, EveryMessageRoundTrips) {
  const Buf s = all_messages();
  const std::vector<Message> m = parse_all(s);
  ASSERT_EQ(m.size(), 17u);
  EXPECT_TRUE(m[0].keep_alive);
  EXPECT_EQ(m[1].id, kChoke);
  EXPECT_EQ(m[4].id, kNotInterested);
  EXPECT_EQ(m[5].index, 0xdeadbeefu);
  ASSERT_EQ(m[6].payload.size(), 3u);
  EXPECT_EQ(m[6].payload[2], 0x80);
  EXPECT_EQ(m[7].id, kRequest);
  EXPECT_EQ(m[7].begin, 16384u);
  EXPECT_EQ(m[7].length, 16384u);
  EXPECT_EQ(m[8].id, kPiece);
  EXPECT_EQ(m[8].index, 2u);
  EXPECT_EQ(m[8].begin, 32768u);
  ASSERT_EQ(m[8].payload.size(), kMaxBlock);
  EXPECT_EQ(m[8].payload[300], static_cast<uint8_t>(300));
  EXPECT_EQ(m[9].id, kCancel);
  EXPECT_EQ(m[9].length, 100u);
  EXPECT_EQ(m[10].port, 6881);
  EXPECT_EQ(m[11].id, kSuggest);
  EXPECT_EQ(m[12].id, kHaveAll);
  EXPECT_EQ(m[13].id, kHaveNone);
  EXPECT_EQ(m[14].id, kReject);
  EXPECT_EQ(m[14].length, 1u);
  EXPECT_EQ(m[15].index, 6u);
  EXPECT_EQ(m[16].id, kExtended);
  EXPECT_EQ(m[16].ext_id, 0);
  EXPECT_EQ(std::string(m[16].payload.begin(), m[16].payload.end()), "d1:xe");
  for (const Message& x : m) EXPECT_TRUE(x.known);
}

// The stream arrives one byte at a time into a buffer; after each byte the parser either
// takes a whole message or asks for at most what is left of the current one.
TEST(Wire, SplitAtEveryByte) {
  const Buf s = all_messages();
  const std::vector<Message> want = parse_all(s);
  Buf pending;
  std::vector<Message> got;
  size_t start = 0;  // offset in s of pending[0]
  size_t waiting = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    pending.push_back(s[i]);
    if (waiting > 1) {  // need_more promised no message before that many bytes
      --waiting;
      continue;
    }
    Message m;
    const Result r = parse_message(pending, kAll, m);
    ASSERT_NE(r.status, Status::error) << i;
    if (r.status == Status::need_more) {
      ASSERT_GE(r.n, 1u);
      waiting = r.n;
      continue;
    }
    waiting = 0;
    ASSERT_EQ(r.n, pending.size()) << "message ended before its last byte, at " << i;
    // Re-parse from s so payload spans stay valid after pending is cleared.
    Message stable;
    ASSERT_EQ(parse_message(Bytes(s).subspan(start), kAll, stable).status, Status::ok);
    got.push_back(stable);
    start += r.n;
    pending.clear();
  }
  EXPECT_TRUE(pending.empty());
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].id) << i;
    EXPECT_EQ(got[i].payload.size(), want[i].payload.size()) << i;
  }
}

Buf msg(uint32_t len, std::initializer_list<uint8_t> body) {
  Buf b = {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
           static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
  b.insert(b.end(), body);
  return b;
}

Error err(const Buf& b, const Limits& lim = kAll) {
  Message m;
  const Result r = parse_message(b, lim, m);
  return r.status == Status::error ? r.error : Error::ok;
}

TEST(Wire, BadLengths) {
  EXPECT_EQ(err(msg(2, {kChoke, 0})), Error::bad_length);
  EXPECT_EQ(err(msg(4, {kHave, 0, 0, 0})), Error::bad_length);
  EXPECT_EQ(err(msg(6, {kHave})), Error::bad_length);  // detected before the body arrives
  EXPECT_EQ(err(msg(12, {kRequest})), Error::bad_length);
  EXPECT_EQ(err(msg(2, {kPort, 1})), Error::bad_length);
  EXPECT_EQ(err(msg(9, {kPiece})), Error::bad_length);  // no block
  EXPECT_EQ(err(msg(1, {kBitfield})), Error::bad_length);
  EXPECT_EQ(err(msg(1, {kExtended})), Error::bad_length);
  // A piece of 16 KiB + 1 is too long at the prefix, as is anything past every limit.
  EXPECT_EQ(err(msg(9 + kMaxBlock + 1, {kPiece})), Error::too_long);
  EXPECT_EQ(err(msg(0xffffffff, {})), Error::too_long);
  EXPECT_EQ(err(msg((1 << 19) + 2, {kBitfield})), Error::too_long);
  EXPECT_EQ(err(msg(5000, {99})), Error::too_long);  // unknown id beyond max_unknown
  Message m;
  EXPECT_EQ(parse_message(msg(9 + kMaxBlock, {kPiece}), kAll, m).n, kMaxBlock + 8);
}

TEST(Wire, BlockLengthsAndExtensions) {
  EXPECT_EQ(err(msg(13, {kRequest, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})), Error::bad_block);
  EXPECT_EQ(err(msg(13, {kCancel, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 1})), Error::bad_block);
  EXPECT_EQ(err(msg(13, {kRequest, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0})), Error::ok);
  const Limits plain;
  EXPECT_EQ(err(msg(1, {kHaveAll}), plain), Error::not_negotiated);
  EXPECT_EQ(err(msg(5, {kAllowedFast}), plain), Error::not_negotiated);
  EXPECT_EQ(err(msg(13, {kReject}), plain), Error::not_negotiated);
  EXPECT_EQ(err(msg(2, {kExtended}), plain), Error::not_negotiated);
  // An unknown id within its limit is skipped, not an error.
  Message m;
  const Buf u = msg(3, {42, 7, 8});
  const Result r = parse_message(u, plain, m);
  ASSERT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.n, 7u);
  EXPECT_FALSE(m.known);
  EXPECT_EQ(m.id, 42);
  EXPECT_EQ(m.payload.size(), 2u);
}

TEST(Wire, WritersNeedRoom) {
  std::array<uint8_t, 12> small{};
  EXPECT_EQ(write_keep_alive(std::span<uint8_t>(small).first(3)), 0u);
  EXPECT_EQ(write_simple(std::span<uint8_t>(small).first(4), kChoke), 0u);
  EXPECT_EQ(write_block_ref(small, kRequest, 0, 0, 1), 0u);
  EXPECT_EQ(write_piece_header(small, 0, 0, 1), 0u);
  const std::array<uint8_t, 8> bits{};
  EXPECT_EQ(write_bitfield(small, bits), 0u);
  EXPECT_EQ(write_extended(small, 1, bits), 0u);
  EXPECT_EQ(write_index(small, kHave, 1), 9u);
}

TEST(ExtHandshake, RoundTrip) {
  ExtHandshake h{.ut_metadata = 3,
                 .ut_pex = 1,
                 .port = 6881,
                 .reqq = 250,
                 .metadata_size = 31235,
                 .client = "corewire 0.1"};
  std::array<uint8_t, 256> out{};
  const size_t n = write_ext_handshake(out, h);
  ASSERT_NE(n, 0u);
  // Canonical: keys sorted at every level.
  std::array<bencode::Token, 32> toks;
  bencode::Doc doc;
  ASSERT_EQ(bencode::decode(Bytes(out).first(n), toks, {}, doc), bencode::Error::ok);
  ExtHandshake got;
  ASSERT_EQ(parse_ext_handshake(Bytes(out).first(n), toks, got), Error::ok);
  EXPECT_EQ(got.ut_metadata, 3);
  EXPECT_EQ(got.ut_pex, 1);
  EXPECT_EQ(got.port, 6881);
  EXPECT_EQ(got.reqq, 250u);
  EXPECT_EQ(got.metadata_size, 31235);
  EXPECT_EQ(got.client, "corewire 0.1");
  EXPECT_EQ(write_ext_handshake(std::span<uint8_t>(out).first(20), h), 0u);
}

TEST(ExtHandshake, Parse) {
  std::array<bencode::Token, 32> toks;
  ExtHandshake h;
  // libtorrent's shape: unknown keys and unsorted ones are fine.
  // yourip holds NUL bytes: the literal's size, not strlen.
  constexpr char kLt[] =
      "d1:md11:lt_donthavei7e11:ut_metadatai2ee6:yourip4:\x7f\0\0\x01"
      "1:pi6881e1:v14:libtorrent/2.0e";
  ASSERT_EQ(parse_ext_handshake(B(std::string_view(kLt, sizeof kLt - 1)), toks, h), Error::ok);
  EXPECT_EQ(h.ut_metadata, 2);
  EXPECT_EQ(h.ut_pex, 0);
  EXPECT_EQ(h.port, 6881);
  EXPECT_EQ(h.metadata_size, -1);
  EXPECT_EQ(h.client, "libtorrent/2.0");
  EXPECT_EQ(parse_ext_handshake(B("d1:mi1ee"), toks, h), Error::bad_extension);
  EXPECT_EQ(parse_ext_handshake(B("d1:md11:ut_metadatai256eee"), toks, h), Error::bad_extension);
  EXPECT_EQ(parse_ext_handshake(B("d1:pi70000ee"), toks, h), Error::bad_extension);
  EXPECT_EQ(parse_ext_handshake(B("d13:metadata_sizei-1ee"), toks, h), Error::bad_extension);
  EXPECT_EQ(parse_ext_handshake(B("d1:vi1ee"), toks, h), Error::bad_extension);
  EXPECT_EQ(parse_ext_handshake(B("li1ee"), toks, h), Error::bad_extension);
  EXPECT_EQ(parse_ext_handshake(B("d1:m"), toks, h), Error::bad_extension);
}

}  // namespace
}  // namespace cw::swarm::proto
