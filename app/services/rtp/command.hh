// The rtp service's run-time commands (docs/rtp.md, "Sessions at run time"): what
// `corewirectl rtp open|close|list` becomes on the control socket, as one line of text the
// control thread hands the service (rt::ServiceCommand), e.g.
//   open peer=127.0.0.1:5006 pt=0 ssrc=4660 peer_ssrc=22136
//   open peer=127.0.0.1:5006 peer_b=127.0.0.1:5008     (a relay table: side A, side B)
//   close peer=127.0.0.1:5006 peer_ssrc=22136
//   list
// Pure: the parser checks every token (unknown keys, repeated keys, values out of range are
// errors) and is fuzzed (tests/fuzz/rtp_command_fuzz.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/io.hh"

namespace cw::rtp {

inline constexpr size_t kMaxCommandBytes = 1024;

enum class CommandOp : uint8_t { open, close, list };

struct Command {
  CommandOp op = CommandOp::list;
  dp::Endpoint peer{};     // open, close: the peer's RTP/RTCP address (required)
  dp::Endpoint peer_b{};   // open (relay): side B (0: not given)
  int pt = -1;             // open: payload type (-1: the table's)
  uint32_t ssrc = 0;       // open: our SSRC (0: random)
  uint32_t peer_ssrc = 0;  // open, close: the peer's SSRC (0: any, learned)
};

inline dp::Endpoint endpoint_of_key(uint64_t key) {
  return {uint32_t(key >> 16), uint16_t(key)};
}

// Parses one command line; returns "" or what is wrong (one line, for the reply).
std::string parse_command(std::string_view text, Command& out);

// The session key on the wire of mail: a peer's address and port in 48 bits (never 0 for a
// session: its address is nonzero).
inline uint64_t endpoint_key(const dp::Endpoint& e) {
  return uint64_t{e.addr_be} << 16 | e.port_be;
}

}  // namespace cw::rtp
