// Shared by the service fuzz targets: runs one echo service in rt::Worker over the fake
// backend and feeds it the fuzzer's bytes
//   (1) as one UDP datagram: at most one reply, within the amplification bound;
//   (2) as a TCP stream cut at fuzzer-chosen points, and again as one segment: the output
//       and the connection's fate must not depend on the segmentation.
// Input layout: stream bytes, then up to 15 cut lengths, then a count byte (low 4 bits =
// how many cut-length bytes precede it). Cut lengths are taken in turn (0 -> 1 byte); the
// last segment holds whatever is left.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <variant>
#include <vector>

#include "app/runtime/worker.hh"
#include "app/services/udp_reply.hh"
#include "dataplane/fake/fake_io.hh"

namespace cw::fuzz {

#define CW_FUZZ_CHECK(c)    \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

template <class Service>
class Harness {
 public:
  struct Outcome {
    std::vector<uint8_t> out;
    bool open = false;
  };

  Harness() : w_(io_, {Service{}}, {0}, loop_, 4, stats_, svc_, mail_) {}

  std::vector<dp::FakeWorker::SentDatagram> datagram(std::span<const uint8_t> b) {
    io_.inject_datagram(0, peer_, b);
    run();
    return io_.take_sent();
  }

  Outcome stream(std::span<const uint8_t> b, std::span<const uint8_t> cuts) {
    const dp::ConnId c = io_.inject_open(0, peer_);
    size_t off = 0, k = 0;
    while (off < b.size() && io_.is_open(c)) {
      size_t n = b.size() - off;
      if (k < cuts.size()) n = std::min<size_t>(n, cuts[k++] + 1);
      io_.inject_stream(c, b.subspan(off, n));
      off += n;
      w_.run_once();  // deliver each segment on its own
    }
    run();
    Outcome o{io_.take_stream_out(c), io_.is_open(c)};
    if (o.open) {
      io_.inject_peer_close(c);
      run();
    }
    CW_FUZZ_CHECK(w_.tails().in_use() == 0);  // a closed connection gives its tail back
    return o;
  }

 private:
  void run() {
    for (int i = 0; i < 1000; ++i) {
      const uint64_t before = stats_.items.get();
      w_.run_once();
      if (stats_.items.get() == before) return;
    }
    std::abort();  // the worker must go idle once the input is consumed
  }

  dp::IoConfig iocfg_{};
  dp::FakeWorker io_{0, iocfg_, 1};
  rt::WorkerStats stats_;
  std::vector<rt::ServiceStats> svc_ = std::vector<rt::ServiceStats>(1);
  rt::Mailboxes mail_{1, 4};
  rt::LoopConfig loop_{
      .burst = 8, .busy_poll = true, .tail_small = 64, .tail_buffers = 4, .max_timers = 16};
  rt::Worker<dp::FakeWorker, std::variant<Service>> w_;
  dp::Endpoint peer_{htonl(0x7f000001), htons(4242)};
};

template <class Service>
int run_one(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t ncuts = std::min<size_t>(data[size - 1] & 15, size - 1);
  const std::span<const uint8_t> cuts(data + size - 1 - ncuts, ncuts);
  const std::span<const uint8_t> bytes(data, size - 1 - ncuts);

  Harness<Service> h;
  const auto sent = h.datagram(bytes);
  CW_FUZZ_CHECK(sent.size() <= 1);
  for (const auto& d : sent)
    CW_FUZZ_CHECK(svc::udp_reply_allowed(uint32_t(bytes.size()), uint32_t(d.bytes.size())));

  const auto split = h.stream(bytes, cuts);
  const auto whole = h.stream(bytes, {});
  CW_FUZZ_CHECK(split.out == whole.out);
  CW_FUZZ_CHECK(split.open == whole.open);
  return 0;
}

}  // namespace cw::fuzz
