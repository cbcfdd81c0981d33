// Store operations in isolation (no codec, no I/O): 32-byte keys, 100-byte values, uniform
// random keys over a key space that fits (get hit/miss, overwrite) or overflows the store
// (set with an eviction each). Keys are formatted into a hot buffer per call, as a request's
// key sits in a just-received packet. Build: ninja -C build bench/cw-kv-store-bench.
#include <benchmark/benchmark.h>

#include <array>
#include <random>
#include <string>
#include <vector>

#include "app/services/kv/store/store.hh"

namespace {

constexpr uint32_t kNow = 1'700'000'000;
constexpr std::size_t kKeyLen = 32;

struct Key {
  std::array<char, kKeyLen> b;
  explicit Key(uint64_t i) {
    b.fill('0');
    std::copy_n("key:", 4, b.begin());
    for (std::size_t d = kKeyLen - 1; i != 0; --d, i /= 10) b[d] = static_cast<char>('0' + i % 10);
  }
  std::string_view view() const { return {b.data(), b.size()}; }
};

cw::kv::Store make_store(std::size_t mem, std::size_t keys) {
  cw::kv::StoreConfig cfg;
  cfg.memory_limit = mem;
  cw::kv::Store s = std::move(cw::kv::Store::create(cfg)).value();
  const std::string v(100, 'v');
  for (std::size_t i = 0; i < keys; ++i) s.store({.key = Key(i).view(), .value = v}, kNow);
  return s;
}

std::vector<uint32_t> random_order(std::size_t n) {
  std::mt19937 rng(1);
  std::vector<uint32_t> idx(1 << 16);
  for (uint32_t& i : idx) i = static_cast<uint32_t>(rng() % n);
  return idx;
}

void BM_GetHit(benchmark::State& st) {
  const auto n = static_cast<std::size_t>(st.range(0));
  cw::kv::Store s = make_store(std::size_t{256} << 20, n);
  const auto idx = random_order(n);
  std::size_t i = 0;
  for (auto _ : st) {
    const Key k(idx[i++ & 0xffff]);
    benchmark::DoNotOptimize(s.get(k.view(), kNow).item.value.data());
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_GetHit)->Arg(10'000)->Arg(1'000'000);

// A burst of 16 gets: prefetch every bucket, then look them all up.
void BM_GetHitBurst16(benchmark::State& st) {
  const auto n = static_cast<std::size_t>(st.range(0));
  cw::kv::Store s = make_store(std::size_t{256} << 20, n);
  const auto idx = random_order(n);
  std::size_t i = 0;
  for (auto _ : st) {
    std::array<Key, 16> keys{
        Key(idx[i & 0xffff]),        Key(idx[(i + 1) & 0xffff]),  Key(idx[(i + 2) & 0xffff]),
        Key(idx[(i + 3) & 0xffff]),  Key(idx[(i + 4) & 0xffff]),  Key(idx[(i + 5) & 0xffff]),
        Key(idx[(i + 6) & 0xffff]),  Key(idx[(i + 7) & 0xffff]),  Key(idx[(i + 8) & 0xffff]),
        Key(idx[(i + 9) & 0xffff]),  Key(idx[(i + 10) & 0xffff]), Key(idx[(i + 11) & 0xffff]),
        Key(idx[(i + 12) & 0xffff]), Key(idx[(i + 13) & 0xffff]), Key(idx[(i + 14) & 0xffff]),
        Key(idx[(i + 15) & 0xffff])};
    i += 16;
    if (st.range(1) != 0)
      for (const Key& k : keys) s.prefetch(k.view());
    for (const Key& k : keys) benchmark::DoNotOptimize(s.get(k.view(), kNow).item.value.data());
  }
  st.SetItemsProcessed(st.iterations() * 16);
}
BENCHMARK(BM_GetHitBurst16)->Args({1'000'000, 0})->Args({1'000'000, 1});

void BM_GetMiss(benchmark::State& st) {
  cw::kv::Store s = make_store(std::size_t{64} << 20, 0);
  const auto idx = random_order(1'000'000);
  std::size_t i = 0;
  for (auto _ : st) benchmark::DoNotOptimize(s.get(Key(idx[i++ & 0xffff]).view(), kNow).outcome);
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_GetMiss);

// Args: keys, store MiB. 1M keys need ~180 MiB, so at 64 MiB every set evicts.
void BM_Set(benchmark::State& st) {
  const auto n = static_cast<std::size_t>(st.range(0));
  cw::kv::Store s = make_store(static_cast<std::size_t>(st.range(1)) << 20, n);
  const auto idx = random_order(n);
  const std::string v(100, 'w');
  std::size_t i = 0;
  for (auto _ : st)
    benchmark::DoNotOptimize(s.store({.key = Key(idx[i++ & 0xffff]).view(), .value = v}, kNow).cas);
  st.SetItemsProcessed(st.iterations());
  st.counters["evictions"] = static_cast<double>(s.stats().evictions.get());
}
BENCHMARK(BM_Set)->Args({10'000, 256})->Args({1'000'000, 256})->Args({1'000'000, 64});

}  // namespace

BENCHMARK_MAIN();
