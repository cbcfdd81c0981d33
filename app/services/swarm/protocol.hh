// The BitTorrent peer wire protocol (BEP 3), with the Fast extension (BEP 6) and the
// extension protocol's handshake (BEP 10): the handshake, a streaming message parser and
// writers into caller buffers. Pure functions over bytes: no I/O, no globals, no
// allocation. A parsed message points into the caller's input, which must stay alive and
// unchanged while it is used. Limits and rules: docs/swarm.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "app/services/swarm/bencode.hh"

namespace cw::swarm::proto {

using Bytes = std::span<const uint8_t>;
using Id20 = std::array<uint8_t, 20>;  // an info-hash or a peer id

inline constexpr std::string_view kProtocol = "BitTorrent protocol";
inline constexpr size_t kHandshakeSize = 1 + 19 + 8 + 20 + 20;   // 68
inline constexpr size_t kLengthSize = 4;                         // the message length prefix
inline constexpr size_t kPieceHeaderSize = kLengthSize + 1 + 8;  // length, id, index, begin
inline constexpr uint32_t kMaxBlock = 16 * 1024;                 // what peers request (BEP 3)

enum MsgId : uint8_t {
  kChoke = 0,
  kUnchoke = 1,
  kInterested = 2,
  kNotInterested = 3,
  kHave = 4,
  kBitfield = 5,
  kRequest = 6,
  kPiece = 7,
  kCancel = 8,
  kPort = 9,
  kSuggest = 13,      // BEP 6
  kHaveAll = 14,      // BEP 6
  kHaveNone = 15,     // BEP 6
  kReject = 16,       // BEP 6
  kAllowedFast = 17,  // BEP 6
  kExtended = 20,     // BEP 10
};

struct Handshake {
  std::array<uint8_t, 8> reserved{};
  Id20 info_hash{};
  Id20 peer_id{};
  // Reserved bits: BEP 10 byte 5 bit 0x10, BEP 6 byte 7 bit 0x04, BEP 5 (DHT) byte 7 bit 0x01.
  bool extended() const { return (reserved[5] & 0x10) != 0; }
  bool fast() const { return (reserved[7] & 0x04) != 0; }
  bool dht() const { return (reserved[7] & 0x01) != 0; }
  void set(bool extended, bool fast, bool dht);
};

enum class Error : uint8_t {
  ok,
  bad_protocol,    // handshake: not "\x13BitTorrent protocol"
  too_long,        // a length prefix beyond every limit, or beyond its id's
  bad_length,      // a length that is not its id's fixed size
  bad_block,       // request/cancel/reject: block length 0 or > max_block
  not_negotiated,  // a BEP 6 or BEP 10 message the handshakes did not enable
  bad_extension,   // BEP 10 handshake payload: not a dict, or a field of the wrong type
  kCount,
};
std::string_view error_name(Error e);

enum class Status : uint8_t { ok, need_more, error };
struct Result {
  Status status = Status::ok;
  size_t n = 0;  // ok: bytes consumed; need_more: at least this many more bytes are needed
  Error error = Error::ok;
};

// What the parser accepts: sizes and the extensions both sides announced.
struct Limits {
  uint32_t max_block = kMaxBlock;         // payload of a piece, length of a request
  size_t max_bitfield = size_t{1} << 19;  // bytes (4 Mi pieces)
  size_t max_extended = size_t{1} << 17;  // BEP 10 payload (a 16 KiB BEP 9 piece + dict)
  size_t max_unknown = size_t{1} << 12;   // payload of an id we do not know (skipped)
  bool fast = false;                      // BEP 6 negotiated
  bool extended = false;                  // BEP 10 negotiated
};

struct Message {
  bool keep_alive = false;
  bool known = true;  // false: an id this parser does not know (skip it, BEP 3)
  uint8_t id = 0;
  uint32_t index = 0;   // have, request, piece, cancel, suggest, reject, allowed fast
  uint32_t begin = 0;   // request, piece, cancel, reject
  uint32_t length = 0;  // request, cancel, reject
  uint16_t port = 0;    // port (BEP 5)
  uint8_t ext_id = 0;   // extended: 0 is the extension handshake
  Bytes payload;        // bitfield bits, piece block, extended payload, unknown payload
};

// The 68-byte handshake; need_more until all of it is there.
Result parse_handshake(Bytes in, Handshake& out);
void write_handshake(std::span<uint8_t, kHandshakeSize> out, const Handshake& h);

// One message from the front of in. A length prefix beyond the limits is an error as soon as
// the prefix and id are in, so a peer cannot make us buffer more than one message allows.
Result parse_message(Bytes in, const Limits& lim, Message& out);

// Writers. Each returns the bytes written, or 0 if out is too small.
size_t write_keep_alive(std::span<uint8_t> out);
// choke, unchoke, interested, not interested, have all, have none.
size_t write_simple(std::span<uint8_t> out, MsgId id);
// have, suggest, allowed fast.
size_t write_index(std::span<uint8_t> out, MsgId id, uint32_t index);
// request, cancel, reject.
size_t write_block_ref(std::span<uint8_t> out, MsgId id, uint32_t index, uint32_t begin,
                       uint32_t length);
size_t write_bitfield(std::span<uint8_t> out, Bytes bits);
// The 13 bytes in front of a block of block_len bytes (sent from where it lies: no copy).
size_t write_piece_header(std::span<uint8_t> out, uint32_t index, uint32_t begin,
                          uint32_t block_len);
size_t write_piece(std::span<uint8_t> out, uint32_t index, uint32_t begin, Bytes block);
size_t write_port(std::span<uint8_t> out, uint16_t port);
size_t write_extended(std::span<uint8_t> out, uint8_t ext_id, Bytes payload);

// The BEP 10 handshake (extended message 0): what we read of it and write.
struct ExtHandshake {
  uint8_t ut_metadata = 0;  // "m" ids; 0: not supported (or disabled)
  uint8_t ut_pex = 0;
  uint16_t port = 0;           // "p": the peer's listen port, 0 if absent
  uint32_t reqq = 0;           // outstanding requests the peer allows, 0 if absent
  int64_t metadata_size = -1;  // BEP 9: bytes of the info dict, -1 if absent
  std::string_view client;     // "v", empty if absent
};
// Unknown keys are ignored (BEP 10); a known key with the wrong type or range is an error.
Error parse_ext_handshake(Bytes payload, std::span<bencode::Token> toks, ExtHandshake& out);
// The bencoded payload (not the message framing; wrap it with write_extended(out, 0, ...)).
size_t write_ext_handshake(std::span<uint8_t> out, const ExtHandshake& h);

}  // namespace cw::swarm::proto
