// cw-vm-probe: the machine-state probe the benchmark harness runs before each round. Two
// threads, one pinned to each of two cores, bounce one cache line (a counter each side
// increments in turn); the round-trip time shows whether the two vCPUs currently share a
// fast cache path and are both running. A VM that has slipped into a slow state (vCPUs
// descheduled or moved to distant host cores) gives a round trip many times the usual one.
//   cw-vm-probe [--cores 0,1] [--rounds 100000] [--chunks 10] [--max-s 2]
// Prints one JSON line: {"cores":[a,b],"ns_per_rt":[per chunk...],"median_ns":..,"min_ns":..}
// and exits 0; exits 1 when a thread cannot be pinned. Bounded: stops after --max-s seconds
// (the remaining chunks are left out, "cut":true).
#include <pthread.h>
#include <sched.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct alignas(64) Line {
  std::atomic<uint64_t> v{0};
};

bool pin(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cw-vm-probe: cache-line ping-pong between two cores"};
  std::vector<int> cores{0, 1};
  uint64_t rounds = 100000;
  unsigned chunks = 10;
  double max_s = 2.0;
  app.add_option("--cores", cores, "the two CPUs")->delimiter(',')->expected(2);
  app.add_option("--rounds", rounds, "round trips per chunk")->check(CLI::Range(1u, 100000000u));
  app.add_option("--chunks", chunks, "chunks (one figure each)")->check(CLI::Range(1u, 1000u));
  app.add_option("--max-s", max_s, "stop after this many seconds");
  CLI11_PARSE(app, argc, argv);

  Line line;
  std::atomic<bool> stop{false}, pinned_ok{true};
  // The echo side: answers every odd value v with v + 1.
  std::thread echo([&] {
    if (!pin(cores[1])) pinned_ok = false;
    uint64_t seen = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t v = line.v.load(std::memory_order_acquire);
      if (v != seen && (v & 1)) {
        line.v.store(v + 1, std::memory_order_release);
        seen = v + 1;
      }
    }
  });
  const bool ok = pin(cores[0]);
  const auto deadline = Clock::now() + std::chrono::duration<double>(max_s);
  std::vector<double> ns;
  bool cut = false;
  uint64_t v = 0;
  for (unsigned c = 0; c < chunks && ok && pinned_ok && !cut; ++c) {
    const auto t0 = Clock::now();
    for (uint64_t r = 0; r < rounds; ++r) {
      line.v.store(++v, std::memory_order_release);
      uint64_t spins = 0;
      while (line.v.load(std::memory_order_acquire) != v + 1) {
        // A descheduled peer can keep us spinning for a whole time slice; stay bounded.
        if ((++spins & 0xffff) == 0 && Clock::now() > deadline) {
          cut = true;
          break;
        }
      }
      if (cut) break;
      ++v;
    }
    if (!cut)
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                   double(rounds));
    if (Clock::now() > deadline) cut = cut || c + 1 < chunks;
  }
  stop = true;
  echo.join();
  if (!ok || !pinned_ok) {
    std::fprintf(stderr, "cw-vm-probe: cannot pin to cores %d,%d\n", cores[0], cores[1]);
    return 1;
  }
  std::vector<double> sorted = ns;
  std::sort(sorted.begin(), sorted.end());
  std::printf("{\"cores\":[%d,%d],\"rounds\":%llu,\"ns_per_rt\":[", cores[0], cores[1],
              (unsigned long long)rounds);
  for (size_t i = 0; i < ns.size(); ++i) std::printf("%s%.1f", i ? "," : "", ns[i]);
  std::printf("],\"median_ns\":%.1f,\"min_ns\":%.1f,\"cut\":%s}\n",
              sorted.empty() ? -1.0 : sorted[sorted.size() / 2],
              sorted.empty() ? -1.0 : sorted.front(), cut ? "true" : "false");
  return 0;
}
