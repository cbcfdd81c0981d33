// libFuzzer target: corewire-bench's streaming parser of a NATS server's replies
// (bench/corewire_bench/nats_codec). The input (after its first byte) is parsed twice: in one
// piece, and cut at a point the first byte picks, with unconsumed bytes carried into the
// next piece as the runtime does. Both give the same events, every event takes bytes from
// inside its input, a message's kept head never exceeds the stamp or its payload, and a
// control line never grows past the limit without being refused.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench/corewire_bench/nats_codec.hh"

namespace nats = cw::bench::nats;

// Prints the failed condition's line, then aborts (libFuzzer keeps the input).
#define NATS_CHECK(c) check_or_abort(c, __LINE__, #c)

namespace {

void check_or_abort(bool ok, int line, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "nats_reply_fuzz.cc:%d: check failed: %s\n", line, what);
  std::abort();
}

struct Seen {
  nats::Ev kind;
  uint32_t sid, total, head_have;
  uint8_t head0;
  bool operator==(const Seen&) const = default;
};

// Parses in as pieces [0, cut) and [cut, end); returns the events up to bad or the end.
std::vector<Seen> parse(const uint8_t* data, size_t size, size_t cut) {
  std::vector<Seen> out;
  nats::RxState st;
  std::vector<uint8_t> buf;
  for (size_t piece = 0; piece < 2; ++piece) {
    const size_t b = piece == 0 ? 0 : cut, e = piece == 0 ? cut : size;
    buf.insert(buf.end(), data + b, data + e);
    size_t used = 0;
    for (;;) {
      const std::span<const uint8_t> in(buf.data() + used, buf.size() - used);
      const nats::Event ev = nats::next(st, in);
      NATS_CHECK(ev.consumed <= in.size());
      used += ev.consumed;
      if (ev.kind == nats::Ev::need_more) {
        // What stays buffered is a control line in progress, within the limit.
        NATS_CHECK(st.remaining > 0 || buf.size() - used <= nats::kMaxControlLine + 1);
        break;
      }
      NATS_CHECK(ev.consumed > 0 || ev.kind == nats::Ev::bad);
      Seen s{ev.kind, 0, 0, 0, 0};
      if (ev.kind == nats::Ev::msg) {
        NATS_CHECK(st.remaining == 0);
        NATS_CHECK(st.head_have <= nats::kStampSize && st.head_have <= st.total);
        NATS_CHECK(st.skip <= st.total && st.total <= nats::kMaxPayload);
        s = {ev.kind, st.sid, st.total, st.head_have, st.head_have ? st.head[0] : uint8_t(0)};
        if (st.head_have == nats::kStampSize) (void)nats::get_stamp(st.head);
      }
      out.push_back(s);
      if (ev.kind == nats::Ev::bad) return out;
    }
    buf.erase(buf.begin(), buf.begin() + std::ptrdiff_t(used));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t n = size - 1;
  const size_t cut = n ? data[0] % (n + 1) : 0;
  const auto whole = parse(data + 1, n, n);
  const auto split = parse(data + 1, n, cut);
  NATS_CHECK(whole == split);
  return 0;
}
