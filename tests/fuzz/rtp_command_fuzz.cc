// libFuzzer target: the rtp service's run-time command parser (app/services/rtp/command.hh),
// what `corewirectl rtp ...` hands a worker. Any text parses or is refused with a message;
// an accepted open/close has a nonzero peer, an accepted pt is outside RTCP's 64..95, and
// the input, fed to the jitter buffer as (seq, timestamp, arrival) triples, keeps its
// counts adding up to the packets given.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "app/services/rtp/command.hh"
#include "app/services/rtp/jitter_buffer.hh"
#include "tests/fuzz/rtp_fuzz_check.hh"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cw::rtp::Command c;
  const std::string e =
      cw::rtp::parse_command(std::string_view(reinterpret_cast<const char*>(data), size), c);
  if (e.empty()) {
    if (c.op != cw::rtp::CommandOp::list) RTP_CHECK(c.peer.addr_be != 0 && c.peer.port_be != 0);
    RTP_CHECK(c.pt < 64 || c.pt > 95);
    RTP_CHECK(c.pt <= 127);
  }
  cw::rtp::JitterBuffer jb;
  size_t n = 0;
  for (size_t i = 0; i + 10 <= size; i += 10, ++n) {
    uint16_t seq;
    uint32_t ts, arrival;
    std::memcpy(&seq, data + i, 2);
    std::memcpy(&ts, data + i + 2, 4);
    std::memcpy(&arrival, data + i + 6, 4);
    (void)jb.add(seq, ts, arrival);
  }
  const cw::rtp::JitterCounts& k = jb.counts();
  // Each packet is held (then played, or flushed as played by a resync), late or a duplicate.
  RTP_CHECK(k.played + k.late + k.duplicates + jb.held() == n);
  RTP_CHECK(jb.delay() >= 160 && jb.delay() <= 1600);
  RTP_CHECK(jb.held() <= cw::rtp::JitterBuffer::kSlots);
  return 0;
}
