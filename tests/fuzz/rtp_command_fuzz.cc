// libFuzzer target: the rtp service's run-time command parser (app/services/rtp/command.hh),
// what `corewirectl rtp ...` hands a worker. Any text parses or is refused with a message;
// an accepted open/close has a nonzero peer, an accepted pt is outside RTCP's 64..95, and
// an accepted peer_b (a relay session) is an open's, nonzero and not the peer; the input, fed
// to the jitter buffer as (seq, timestamp, arrival) triples, keeps its counts adding up to
// the packets given; and, read as operations on the relay's forwarding table
// (relay_table.hh), leaves the table agreeing with a plain map.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string_view>

#include "app/services/rtp/command.hh"
#include "app/services/rtp/jitter_buffer.hh"
#include "app/services/rtp/relay_table.hh"
#include "tests/fuzz/rtp_fuzz_check.hh"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cw::rtp::Command c;
  const std::string e =
      cw::rtp::parse_command(std::string_view(reinterpret_cast<const char*>(data), size), c);
  if (e.empty()) {
    if (c.op != cw::rtp::CommandOp::list) RTP_CHECK(c.peer.addr_be != 0 && c.peer.port_be != 0);
    RTP_CHECK(c.pt < 64 || c.pt > 95);
    RTP_CHECK(c.pt <= 127);
    if (c.peer_b.port_be != 0) {
      RTP_CHECK(c.op == cw::rtp::CommandOp::open && c.peer_b.addr_be != 0);
      RTP_CHECK(!(c.peer_b == c.peer) && c.pt == -1 && c.ssrc == 0 && c.peer_ssrc == 0);
    }
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
  // Each byte an operation on 8 routes: the high bit inserts (else erases) key 1 + low 4 bits
  // (16 keys: collisions, a full table, probe runs that wrap).
  cw::rtp::RelayTable t(8);
  std::map<uint64_t, uint64_t> model;
  for (size_t i = 0; i < size; ++i) {
    const uint64_t k = 1 + (data[i] & 15), v = data[i];
    if (data[i] & 0x80) {
      const bool fits = model.count(k) || model.size() < 8;
      RTP_CHECK(t.insert(k, v, 0) == fits);
      if (fits) model[k] = v;
    } else {
      RTP_CHECK(t.erase(k) == (model.erase(k) == 1));
    }
  }
  RTP_CHECK(t.size() == model.size());
  for (uint64_t k = 1; k <= 16; ++k) {
    const cw::rtp::RelayTable::Entry* e = t.find(k);
    RTP_CHECK((e != nullptr) == (model.count(k) == 1));
    RTP_CHECK(!e || e->dest == model[k]);
  }
  return 0;
}
