// The native corewire message protocol (specified in docs/protocol.md). Pure functions over
// bytes: no I/O, no globals, no allocation. One message per UDP datagram, or a sequence of
// messages on a TCP stream (the header's payload length frames them).
//
//   off size field
//     0    2  magic        0x4357 ("CW")
//     2    1  version      1
//     3    1  kind         0 request, 1 response, 2 one-way, 3 error
//     4    2  service id
//     6    2  flags        (none defined in v1; must be 0)
//     8    8  request id   chosen by the requester, echoed in the response/error
//    16    4  payload length (bytes after the header, <= kMaxPayload)
//    20    4  reserved     must be 0 in v1
//   All integers big-endian. An error message's payload is a 2-byte ErrorCode.
// Versioning: every version keeps bytes 0..15 (magic, version, kind, service, flags, request
// id) where v1 has them, so a server can answer a version it does not know with a
// bad_version error that echoes the request id; that error carries the highest version the
// server speaks in its version byte.
#pragma once

#include <cstdint>
#include <span>

namespace cw::proto::native {

inline constexpr uint16_t kMagic = 0x4357;
inline constexpr uint8_t kVersion = 1;
inline constexpr uint32_t kHeaderSize = 24;
inline constexpr uint32_t kMaxPayload = 65507 - kHeaderSize;  // fits one UDP datagram

enum class Kind : uint8_t { request = 0, response = 1, oneway = 2, error = 3 };

enum class ErrorCode : uint16_t {
  bad_version = 1,
  bad_kind = 2,
  too_large = 3,
  unknown_service = 4,
  bad_reserved = 5,  // flags or reserved bits set that v1 does not define
  truncated = 6,     // datagram shorter than its header says
  unavailable = 7,   // the service is served here but disabled by the operator (retry later)
};

struct Header {
  Kind kind = Kind::request;
  uint16_t service = 0;
  uint16_t flags = 0;
  uint64_t request_id = 0;
  uint32_t payload_len = 0;
};

enum class Status : uint8_t {
  ok,
  need_more,    // fewer bytes than a whole message (stream: wait; datagram: truncated)
  bad_magic,    // not this protocol: drop, never answer
  bad_version,  // header readable: answer with an error
  bad_kind,
  too_large,
  bad_reserved,
};

struct Decoded {
  Status status = Status::need_more;
  // Valid for every status except bad_magic and a need_more given fewer than kHeaderSize
  // bytes (a need_more with a whole header says the payload is short: "truncated").
  Header header;
  std::span<const uint8_t> payload;  // ok only
  uint32_t frame_len = 0;            // ok only: header + payload bytes consumed
};

// Decodes the message at the start of bytes (bytes may hold more after it). Checks, in
// order: magic (as soon as 1-2 bytes are there, so a stream of garbage is refused early),
// whole header, version, kind, flags/reserved, payload length, whole payload.
Decoded decode(std::span<const uint8_t> bytes);
// Writes a header (kHeaderSize bytes) at out.
void encode_header(uint8_t* out, const Header& h);
// Writes a whole error message answering `req` at out (kHeaderSize + 2 bytes); returns size.
uint32_t encode_error(uint8_t* out, const Header& req, ErrorCode code);
inline constexpr uint32_t kErrorSize = kHeaderSize + 2;
// Writes header h (its payload_len is set to payload.size()) followed by payload at out,
// which must hold kHeaderSize + payload.size() bytes; returns the bytes written.
uint32_t encode_message(uint8_t* out, Header h, std::span<const uint8_t> payload);
// The ErrorCode a non-ok, answerable status maps to (need_more with a whole header maps to
// truncated). Only bad_version, bad_kind, too_large, bad_reserved, need_more are answerable.
ErrorCode error_for(Status s);

}  // namespace cw::proto::native
