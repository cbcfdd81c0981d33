// cw-stack-bench: Google Benchmark micro-benchmarks of the DPDK user-space stack's per-packet
// work, without a port: the Internet checksum, parsing a received UDP frame (every RFC 1812
// check and the UDP checksum), and writing a reply's headers from a prepared template.
// These are the parts of a DPDK worker's time that are ours (docs/dpdk.md, "Where the time
// goes"); run by hand (bench/README.md), a --benchmark_min_time=0.01 smoke run is registered.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "dataplane/dpdk/net/frame.hh"
#include "tests/dataplane/dpdk/frames.hh"

namespace {

using namespace cw::dp::net;
// The unit tests' frames and interface (10.0.0.1 -> 10.0.0.2/24), so both measure the same.
using test::peer_to_us;

// Arg: bytes summed (20 = an IPv4 header, 72 = UDP header + 64-byte message).
void BM_Checksum(benchmark::State& st) {
  std::vector<uint8_t> buf(size_t(st.range(0)) + 1);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = uint8_t(i * 37 + 11);
  const uint8_t* p = buf.data();
  const size_t len = size_t(st.range(0));
  for (auto _ : st) {
    benchmark::DoNotOptimize(p);
    benchmark::DoNotOptimize(csum_fold(csum_add(p, len)));
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * st.range(0));
}
BENCHMARK(BM_Checksum)->Arg(20)->Arg(72)->Arg(1480);

// The parse benchmarks' input: a UDP frame from the test peer to us (port 11111) with a
// payload of `len` patterned bytes and both checksums right.
std::vector<uint8_t> request_frame(uint32_t len) {
  std::vector<uint8_t> f(kUdpFrameHdrLen + len);
  for (size_t i = kUdpFrameHdrLen; i < f.size(); ++i) f[i] = uint8_t(i);
  write_udp_frame(f.data(), peer_to_us(11111), len, TxCsum::software);
  return f;
}

// Arg: UDP payload bytes. parse_frame: the checked parser, every check one by one (the
// datapath's path for anything but the plain datagram).
void BM_ParseUdpFrame(benchmark::State& st) {
  const std::vector<uint8_t> f = request_frame(uint32_t(st.range(0)));
  const Interface ifc = test::test_interface();
  for (auto _ : st) {
    const Parsed p = parse_frame(f.data(), uint32_t(f.size()), ifc, {});
    benchmark::DoNotOptimize(p);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ParseUdpFrame)->Arg(64)->Arg(1400);

// The same frame through the datapath's inline fast path (parse_udp_frame_fast).
void BM_ParseUdpFrameFast(benchmark::State& st) {
  const std::vector<uint8_t> f = request_frame(uint32_t(st.range(0)));
  const Interface ifc = test::test_interface();
  for (auto _ : st) {
    UdpDatagram d;
    benchmark::DoNotOptimize(parse_udp_frame_fast(f.data(), uint32_t(f.size()), ifc, {}, d));
    benchmark::DoNotOptimize(d);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ParseUdpFrameFast)->Arg(64)->Arg(1400);

// The same with both checksums verified by the NIC (mbuf flags): the parser's own checks
// alone, without the checksum work.
void BM_ParseUdpFrameNicChecksums(benchmark::State& st) {
  const std::vector<uint8_t> f = request_frame(uint32_t(st.range(0)));
  const Interface ifc = test::test_interface();
  const RxOffload off{CsumState::good, CsumState::good};
  for (auto _ : st) {
    const Parsed p = parse_frame(f.data(), uint32_t(f.size()), ifc, off);
    benchmark::DoNotOptimize(p);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ParseUdpFrameNicChecksums)->Arg(64);

// Arg: UDP payload bytes. Software checksums, as on memif, tap and af_packet.
void BM_WriteReplyFromTemplate(benchmark::State& st) {
  std::vector<uint8_t> f(kUdpFrameHdrLen + size_t(st.range(0)));
  UdpHeaderSpec h = peer_to_us(11111);
  std::swap(h.src_mac, h.dst_mac);
  std::swap(h.src_be, h.dst_be);
  const UdpTemplate t = make_udp_template(h, TxCsum::software);
  uint16_t id = 0;
  for (auto _ : st) {
    write_udp_frame(f.data(), t, htons(40000), id++, uint32_t(st.range(0)));
    benchmark::DoNotOptimize(f.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_WriteReplyFromTemplate)->Arg(64)->Arg(1400);

}  // namespace

BENCHMARK_MAIN();
