// libFuzzer target: any byte string as a received Ethernet frame, through the parser (and
// its inline fast path, which must agree with it), the ARP policy and (for echo requests)
// the in-place reply builder. Offsets in the result must stay inside the input.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dataplane/dpdk/net/arp.hh"
#include "dataplane/dpdk/net/frame.hh"

using namespace cw::dp::net;

namespace {
Interface make_ifc() {
  Interface ifc;
  ifc.mac = Mac{0x02, 0, 0, 0, 0, 0x02};
  ifc.addrs[0] = {htonl(0x0A000002u), 24};
  ifc.naddrs = 1;
  return ifc;
}
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Interface ifc = make_ifc();
  static ArpTable table(64);
  static int64_t now = 0;
  now += 100'000'000;
  if (size < 1) return 0;
  // First byte picks the NIC's checksum verdicts, the rest is the frame.
  const RxOffload off{CsumState(data[0] % 3), CsumState((data[0] / 3) % 3)};
  std::vector<uint8_t> f(data + 1, data + size);
  const uint32_t len = uint32_t(f.size());
  Parsed p = parse_frame(f.data(), len, ifc, off);
  // The datapath's inline fast path, a separate implementation, may accept only what the
  // checked parser accepts, with the same datagram.
  UdpDatagram d;
  if (parse_udp_frame_fast(f.data(), len, ifc, off, d)) {
    check(p.kind == FrameKind::udp);
    check(d.src_be == p.src_be && d.dst_be == p.dst_be && d.sport_be == p.sport_be &&
          d.dport_be == p.dport_be && d.payload_off == p.payload_off &&
          d.payload_len == p.payload_len);
  }
  switch (p.kind) {
    case FrameKind::drop:
      check(p.drop < DropReason::count);
      break;
    case FrameKind::udp:
      check(p.payload_off + p.payload_len <= len);
      break;
    case FrameKind::icmp_echo:
      check(uint32_t(p.l3_off) + p.ip_len <= len);
      check(make_echo_reply(f.data(), p) <= len);
      break;
    case FrameKind::ipv4_fragment: {
      check(uint32_t(p.l3_off) + p.ip_len <= len);
      // Reassembly output is parsed without the L2 header; exercise that entry too.
      Parsed q = parse_ipv4_datagram(f.data() + p.l3_off, p.ip_len, ifc, {CsumState::good, {}});
      check(q.kind == FrameKind::ipv4_fragment || q.kind == FrameKind::drop);
      break;
    }
    case FrameKind::arp: {
      ArpDecision d = arp_input(p.arp, p.src_mac, ifc, table, ArpPolicy{}, now);
      check(d.reply ? ifc.is_local(p.arp.tpa_be) : true);
      table.run_timers(now, [](uint32_t, ArpEvent) {});
      check(table.size() <= table.capacity());
      break;
    }
  }
  return 0;
}
