// libFuzzer target: the pubsub service on two workers over the fake backend. Worker 1 holds
// a subscriber to everything (plain and in a queue group); the input is a TCP stream to
// worker 0 (its messages are routed, batched and mailed to worker 1). The stream is fed
// once cut at fuzzer-chosen points and once whole, each to a fresh pair of workers: the
// replies, what the subscriber gets and the connection's fate must not depend on the
// segmentation; the workers must go idle; a closed connection gives back its tail, its
// subscriptions and its interest on the other worker.
// Input layout as service_harness.hh: bytes, up to 15 cut lengths, a count byte.
#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "app/services/pubsub/service.hh"
#include "tests/fuzz/service_harness.hh"

namespace {

using namespace cw;

struct Pair : fuzz::Workers<svc::Pubsub, 2> {
  static inline const rt::SocketRef kRefs[1] = {{0, dp::Transport::tcp, true, true}};
  static inline const dp::Endpoint kBound[1] = {{htonl(0x7f000001), htons(4222)}};

  Pair() : Workers(kRefs, kBound, options()) {}
  static pubsub::PubsubOptions options() {
    pubsub::PubsubOptions o;
    o.max_payload = 4096;
    o.worker_subscriptions = 64;
    o.max_pending = 64 * 1024;
    return o;
  }
  svc::Pubsub& ps(unsigned w) { return service(w); }

  struct Outcome {
    std::vector<uint8_t> out, sub_out;
    bool open = false;
  };
  Outcome stream(std::span<const uint8_t> b, std::span<const uint8_t> cuts) {
    const dp::ConnId s = io[1]->inject_open(0, {htonl(0x7f000001), htons(4243)});
    const std::string_view subs =
        "CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB > 1\r\n"
        "SUB > q 2\r\nPING\r\n";
    io[1]->inject_stream(s, {reinterpret_cast<const uint8_t*>(subs.data()), subs.size()});
    run();
    const dp::ConnId c = io[0]->inject_open(0, {htonl(0x7f000001), htons(4242)});
    fuzz::feed_cut(*io[0], c, b, cuts, [this] { run(); });
    run();
    Outcome o{io[0]->take_stream_out(c), io[1]->take_stream_out(s), io[0]->is_open(c)};
    if (o.open) {
      io[0]->inject_peer_close(c);
      run();
    }
    CW_FUZZ_CHECK(workers[0]->tails().in_use() == 0);
    CW_FUZZ_CHECK(ps(0).subscriptions().size() == 0);  // the fuzzed connection's are gone
    CW_FUZZ_CHECK(ps(1).remote_interest().size() == 0);
    CW_FUZZ_CHECK(ps(0).remote_interest().size() == 2);  // the subscriber's
    return o;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto [bytes, cuts] = fuzz::split_input({data, size});
  Pair split, whole;
  const auto a = split.stream(bytes, cuts);
  const auto b = whole.stream(bytes, {});
  CW_FUZZ_CHECK(a.out == b.out);
  CW_FUZZ_CHECK(a.sub_out == b.sub_out);
  CW_FUZZ_CHECK(a.open == b.open);
  return 0;
}
