// libFuzzer target: the kv service on two workers over the fake backend. The input is a TCP
// stream to worker 0 (keys of both workers: requests are forwarded, replies ordered) and
// one UDP datagram. The stream is fed once cut at fuzzer-chosen points and once whole, each
// to a fresh pair of workers: the replies and the connection's fate must not depend on the
// segmentation; the workers must go idle; a closed connection gives back its tail, held
// replies and pipeline window; both stores stay consistent (Store::verify).
// Input layout as service_harness.hh: bytes, up to 15 cut lengths, a count byte.
#include <arpa/inet.h>
#include <time.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "app/services/kv/service.hh"
#include "tests/fuzz/service_harness.hh"

namespace {

using namespace cw;

struct Pair : fuzz::Workers<svc::Kv, 2> {
  static inline const rt::SocketRef kRefs[2] = {{0, dp::Transport::udp, true, true},
                                                {1, dp::Transport::tcp, true, true}};
  static inline const dp::Endpoint kBound[2] = {{htonl(0x7f000001), 0}, {htonl(0x7f000001), 0}};

  Pair() : Workers(kRefs, kBound, options()) {}
  static kv::KvOptions options() {
    kv::KvOptions o;
    o.item_size_max = 16 * 1024;
    o.memory_limit = 1 << 20;
    o.pipeline_depth = 4;  // pipelines pause and resume often
    return o;
  }
  svc::Kv& kv(unsigned w) { return service(w); }

  struct Outcome {
    std::vector<uint8_t> out;
    bool open = false;
  };
  Outcome stream(std::span<const uint8_t> b, std::span<const uint8_t> cuts) {
    const dp::ConnId c = io[0]->inject_open(1, {htonl(0x7f000001), htons(4242)});
    // Each segment delivered, and its forwarded requests answered, on its own.
    fuzz::feed_cut(*io[0], c, b, cuts, [this] { run(); });
    run();
    Outcome o{io[0]->take_stream_out(c), io[0]->is_open(c)};
    if (o.open) {
      io[0]->inject_peer_close(c);
      run();
    }
    CW_FUZZ_CHECK(workers[0]->tails().in_use() == 0);
    CW_FUZZ_CHECK(kv(0).order().windows_free() == 4);
    for (unsigned w = 0; w < kN; ++w) CW_FUZZ_CHECK(kv(w).store().verify().ok());
    return o;
  }
};

int64_t realtime_ms() {
  timespec t;
  ::clock_gettime(CLOCK_REALTIME, &t);
  return int64_t(t.tv_sec) * 1000 + t.tv_nsec / 1'000'000;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto [bytes, cuts] = fuzz::split_input({data, size});
  // Replies that show the time (stats, mg t/l, expiry) may differ across a second boundary:
  // the outputs are compared only when both runs, and the workers' start, fell in one
  // second of CLOCK_REALTIME (the clock the service reads; time() lags it by up to a tick).
  const int64_t t0 = realtime_ms();
  Pair split, whole;
  const auto a = split.stream(bytes, cuts);
  const auto b = whole.stream(bytes, {});
  const int64_t t1 = realtime_ms();
  if ((t0 - 2) / 1000 == (t1 + 2) / 1000) {
    CW_FUZZ_CHECK(a.out == b.out);
    CW_FUZZ_CHECK(a.open == b.open);
  }
  // The same bytes as a UDP request (frame header from the first 8 bytes): bounded replies.
  split.io[0]->inject_datagram(0, {htonl(0x7f000001), htons(4243)}, bytes);
  split.run();
  for (unsigned w = 0; w < Pair::kN; ++w)
    for (const auto& d : split.io[w]->take_sent())
      CW_FUZZ_CHECK(d.bytes.size() <= kv::proto::kUdpMaxDatagram);
  return 0;
}
