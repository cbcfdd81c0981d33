// sockperf-compatible echo (default port 11111, UDP and TCP): answers every message that
// asks for a reply (client + pong-request, no warm-up) with its own bytes, client bit
// cleared; counts and ignores the rest. Rules and the facts behind them: docs/protocol.md.
// One instance per worker; nothing is shared and nothing is allocated. Its only state is
// the enabled flag (`corewirectl service enable|disable sockperf-echo`, ServiceSwitch).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

#include "app/protocol/sockperf.hh"
#include "app/runtime/service.hh"
#include "app/services/service_switch.hh"
#include "dataplane/io.hh"

namespace cw::svc {

// While disabled (ServiceSwitch) every well-formed message is still counted (requests) but
// none is answered: one asking for a reply is dropped and counted (dropped), as sockperf
// has no error message. A drain needs nothing here: echo keeps no state between messages.
class SockperfEcho : public ServiceSwitch {
 public:
  // Declared counters (app/runtime/counters.hh), by index.
  enum : uint32_t { kNoReply };
  static constexpr rt::CounterDecl kCounters[] = {
      {"no_reply", "Messages that asked for no reply (warm-up, or no pong-request)"}};

  uint32_t max_frame() const { return proto::sockperf::kMaxMessage; }

  // Each datagram stands alone (no per-source reassembly, unlike the stock server). Whole
  // messages are parsed in order; the replies of one datagram go back in one datagram, so a
  // reply is never larger than its request. A bad or truncated message ends the parse and is
  // counted once as malformed; replies for the messages before it are still sent.
  template <class Io>
  void on_datagram(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    Tally t;
    answer(ctx, it, t);
    t.add_to(ctx);
  }
  // A run of datagrams (the runtime's burst): counted once for the run.
  template <class Io>
  void on_datagrams(rt::Ctx<Io>& ctx, std::span<const dp::RxItem> items) {
    Tally t;
    for (const dp::RxItem& it : items) answer(ctx, it, t);
    t.add_to(ctx);
  }

  // Whole messages are answered in order; a partial one is left to the runtime (its bytes
  // come back with the next segment). A bad length closes the connection.
  template <class Io>
  rt::StreamVerdict on_stream(rt::Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    namespace sp = proto::sockperf;
    uint32_t used = 0;
    while (used < b.size()) {
      const sp::Frame f = sp::parse(b.subspan(used));
      if (f.status == sp::Status::need_more) break;
      if (f.status == sp::Status::bad_length) {
        ctx.svc->malformed.add();
        return {used, true};
      }
      ctx.svc->requests.add();
      if (!sp::wants_reply(f.header)) {
        ctx.counters[kNoReply].add();
      } else if (!enabled()) {
        ctx.svc->dropped.add();  // disabled: not answered
      } else {
        uint8_t* out = ctx.io.stream_reserve(c, f.frame_len);
        if (!out) {  // connection gone or its output bound hit (the backend closes it)
          ctx.svc->dropped.add();
          return {used, true};
        }
        std::memcpy(out, b.data() + used, f.frame_len);
        sp::make_reply(out);
        ctx.io.stream_commit(c, f.frame_len);
        ctx.svc->responses.add();
      }
      used += f.frame_len;
    }
    return {used, false};
  }

 private:
  struct Tally {
    uint64_t requests = 0, responses = 0, malformed = 0, dropped = 0, no_reply = 0;
    template <class Io>
    void add_to(rt::Ctx<Io>& ctx) const {
      rt::ServiceStats& s = *ctx.svc;
      if (requests) s.requests.add(requests);
      if (responses) s.responses.add(responses);
      if (malformed) s.malformed.add(malformed);
      if (dropped) s.dropped.add(dropped);
      if (no_reply) ctx.counters[kNoReply].add(no_reply);
    }
  };

  // One datagram (on_datagram above), its counts added to tally.
  template <class Io>
  [[gnu::always_inline]] inline void answer(rt::Ctx<Io>& ctx, const dp::RxItem& it, Tally& tally) {
    namespace sp = proto::sockperf;
    const uint8_t* p = it.data;
    uint32_t left = it.len;
    if (left == 0) {
      ++tally.malformed;
      return;
    }
    uint8_t* out = nullptr;  // reservation (at most `left` bytes), opened by the first reply
    uint32_t out_len = 0, replies = 0, unsent = 0;
    dp::ReplyEdits<Io> edits;  // the flag bytes changed (used when every reply is in place)
    while (left) {
      const sp::Frame f = sp::parse({p, left});
      if (f.status != sp::Status::ok) {
        ++tally.malformed;
        break;
      }
      ++tally.requests;
      if (!sp::wants_reply(f.header)) {
        ++tally.no_reply;
      } else if (!enabled()) {
        ++unsent;  // disabled: not answered
      } else {
        // In place where the backend can (dp::reserve_reply): out may be it.data itself.
        // Replies never overtake requests (out_len <= bytes parsed), so memmove is safe.
        if (!out && unsent == 0) out = dp::reserve_reply(ctx.io, it, left);
        if (out) {
          if (out + out_len != p) std::memmove(out + out_len, p, f.frame_len);  // in place: no copy
          const uint32_t at = out_len + sp::kFlagsLowByte;
          const uint8_t was = out[at];
          edits.byte(at, was, sp::make_reply(out + out_len));
          out_len += f.frame_len;
          ++replies;
        } else {
          ++unsent;  // no tx buffer: the backend counted it too (tx_no_buffer)
        }
      }
      p += f.frame_len;
      left -= f.frame_len;
    }
    if (out) {
      dp::commit_reply(ctx.io, it, out, out_len, edits);
      tally.responses += replies;
    }
    tally.dropped += unsent;
  }
};

}  // namespace cw::svc
