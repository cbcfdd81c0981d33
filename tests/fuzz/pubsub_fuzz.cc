// libFuzzer target: the NATS client protocol codec (app/services/pubsub/protocol.cc) on
// arbitrary bytes, pipelined. Byte 0 selects whether HPUB is allowed; the rest is the
// stream. Invariants: an op consumes at least one byte and no more than it was given; a
// partial op never asks for fewer bytes than it has; a PUB's payload lies inside the op;
// subjects the codec accepts match themselves when literal; MSG heads encode within the
// bound the service sizes for; CONNECT's reader never reads outside its argument.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "app/services/pubsub/protocol.hh"

namespace pp = cw::pubsub::proto;

namespace {

// Aborts (a finding) with the line of the invariant that broke.
void check(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "pubsub_fuzz.cc:%d: invariant broken\n", line);
  std::abort();
}
#define PS_CHECK(c) check((c), __LINE__)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  pp::Limits limits;
  limits.headers = data[0] & 1;
  limits.max_payload = 64;
  std::span<const uint8_t> in(data + 1, size - 1);
  for (int ops = 0; !in.empty() && ops < 1000; ++ops) {
    const pp::Parsed p = pp::parse(in, limits);
    if (p.status == pp::Status::need_more) {
      PS_CHECK(p.need == 0 || p.need > in.size());
      break;
    }
    if (p.status == pp::Status::error) {
      PS_CHECK(p.err != pp::Err::none);
      break;
    }
    PS_CHECK(p.consumed > 0 && p.consumed <= in.size());
    const auto* b = reinterpret_cast<const char*>(in.data());
    const auto inside = [&](std::string_view s) {
      return s.empty() || (s.data() >= b && s.data() + s.size() <= b + p.consumed);
    };
    PS_CHECK(inside(p.subject) && inside(p.reply) && inside(p.queue) && inside(p.sid));
    PS_CHECK(inside(p.json));
    if (p.op == pp::Op::pub || p.op == pp::Op::hpub) {
      PS_CHECK(p.payload.size() <= limits.max_payload && p.hdr_len <= p.payload.size());
      PS_CHECK(p.payload.data() + p.payload.size() + 2 == in.data() + p.consumed);
      char head[pp::msg_head_max(pp::kMaxControlLine, 32, pp::kMaxControlLine)];
      if (p.sid.size() <= 32) {
        const size_t n =
            pp::encode_hmsg_head(head, p.subject, "1", p.reply, p.hdr_len, p.payload.size());
        PS_CHECK(n > 0 && head[n - 1] == '\n');
      }
      if (pp::valid_literal_subject(p.subject)) PS_CHECK(pp::subject_matches(p.subject, p.subject));
      PS_CHECK(pp::subject_matches(">", p.subject) == !p.subject.empty());
    }
    if (p.op == pp::Op::sub && pp::valid_subject(p.subject)) {
      PS_CHECK(pp::subject_matches(p.subject, p.subject) || pp::has_wildcard(p.subject));
      (void)pp::subject_matches(p.subject, p.sid);
    }
    if (p.op == pp::Op::connect) {
      pp::ConnectOpts o;
      if (pp::parse_connect(p.json, o)) PS_CHECK(inside(o.user) && inside(o.pass));
    }
    in = in.subspan(p.consumed);
  }
  return 0;
}
