// The UDP amplification rule (docs/protocol.md): a reply to an unverified UDP source is at
// most kUdpReplySlack bytes larger than the datagram that caused it, and one request
// datagram causes at most one reply datagram.
#pragma once

#include <cstdint>

namespace cw::svc {

inline constexpr uint32_t kUdpReplySlack = 2;  // bytes

inline constexpr bool udp_reply_allowed(uint32_t request_bytes, uint32_t reply_bytes) {
  return uint64_t(reply_bytes) <= uint64_t(request_bytes) + kUdpReplySlack;
}

}  // namespace cw::svc
