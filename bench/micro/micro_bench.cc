// cw-micro-bench: Google Benchmark micro-benchmarks of datapath building blocks: latency
// histogram record, SPSC mailbox push/pop, and the wire codecs. Not a test: run by hand
// (bench/README.md); only a --benchmark_min_time=0.01 smoke run is registered.
#include <benchmark/benchmark.h>

#include <array>
#include <memory>
#include <random>
#include <vector>

#include "app/protocol/native.hh"
#include "app/protocol/sockperf.hh"
#include "app/runtime/service.hh"
#include "app/runtime/spsc.hh"
#include "bench/hist/histogram.hh"

namespace {

using cw::bench::Histogram;

void BM_HistogramRecord(benchmark::State& st) {
  auto h = std::make_unique<Histogram>();
  std::mt19937_64 rng(1);
  std::vector<uint64_t> vals(4096);
  for (auto& v : vals) v = rng() % 10'000'000;  // up to 10 ms
  size_t i = 0;
  for (auto _ : st) {
    h->record(vals[i++ & 4095]);
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_HistogramRecord);

void BM_HistogramP99(benchmark::State& st) {
  auto h = std::make_unique<Histogram>();
  for (uint64_t v = 1; v < 1'000'000; v += 7) h->record(v);
  for (auto _ : st) benchmark::DoNotOptimize(h->percentile(99));
}
BENCHMARK(BM_HistogramP99);

// Push then pop on one thread: the cost of the ring itself, without cache-line transfer.
void BM_SpscPushPop(benchmark::State& st) {
  cw::rt::Spsc<cw::rt::Mail> q(1024);
  cw::rt::Mail m, out;
  for (auto _ : st) {
    m.a++;
    benchmark::DoNotOptimize(q.push(m));
    benchmark::DoNotOptimize(q.pop(out));
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_SpscPushPop);

void BM_NativeDecode(benchmark::State& st) {
  namespace nv = cw::proto::native;
  std::vector<uint8_t> msg(size_t(st.range(0)));
  nv::Header h;
  h.service = 1;
  h.request_id = 42;
  h.payload_len = uint32_t(msg.size() - nv::kHeaderSize);
  nv::encode_header(msg.data(), h);
  for (auto _ : st) {
    auto d = nv::decode(msg);
    benchmark::DoNotOptimize(d);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_NativeDecode)->Arg(64)->Arg(1024);

void BM_NativeEncodeHeader(benchmark::State& st) {
  namespace nv = cw::proto::native;
  std::array<uint8_t, nv::kHeaderSize> out;
  nv::Header h;
  h.service = 1;
  for (auto _ : st) {
    h.request_id++;
    nv::encode_header(out.data(), h);
    benchmark::DoNotOptimize(out);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_NativeEncodeHeader);

void BM_SockperfParseAndReply(benchmark::State& st) {
  namespace sp = cw::proto::sockperf;
  std::vector<uint8_t> msg(64);
  for (auto _ : st) {
    sp::encode_header(msg.data(), {7, sp::kClient | sp::kPongRequest, 64});
    auto f = sp::parse(msg);
    if (sp::wants_reply(f.header)) sp::make_reply(msg.data());
    benchmark::DoNotOptimize(msg.data());
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_SockperfParseAndReply);

}  // namespace

BENCHMARK_MAIN();
