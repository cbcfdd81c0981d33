// Invariants of the kv codec (app/services/kv/protocol.hh) that every kv fuzz target checks
// on each request it parses: views stay inside the input, consumed never claims bytes past
// it for a request (only an error's swallow may), and a cut anywhere in the input gives
// need_more or the same answer as the whole.
#pragma once

#include <cstdlib>
#include <string_view>

#include "app/services/kv/protocol.hh"

namespace cw::kv::proto::fuzz {

#define KV_CHECK(c)         \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

inline bool inside(std::string_view in, std::string_view v) {
  return v.empty() || (v.data() >= in.data() && v.data() + v.size() <= in.data() + in.size());
}

inline void check_one(std::string_view in, const Parsed& p) {
  switch (p.status) {
    case Status::need_more:
      KV_CHECK(p.need == 0 || p.need > in.size());
      return;
    case Status::error:
      KV_CHECK(p.close ? p.reply.empty() : (p.reply.size() > 0 && p.consumed > 0));
      // Only a swallow reaches past the input, and only once its line is whole.
      KV_CHECK(p.consumed <= in.size() || in.find('\n') < in.size());
      return;
    case Status::ok:
      break;
  }
  const Request& r = p.req;
  KV_CHECK(p.consumed > 0 && p.consumed <= in.size());
  const std::string_view used = in.substr(0, p.consumed);
  KV_CHECK(inside(used, r.key) && inside(used, r.data) && inside(used, r.args));
  KV_CHECK(r.key.size() <= kMaxKeyLen);
  KV_CHECK(r.meta.count <= kMaxMetaFlags);
  for (size_t i = 0; i < r.meta.count; ++i) KV_CHECK(r.meta.has(r.meta.order[i]));
  KV_CHECK(r.item_key().size() <= kMaxKeyLen);
  uint32_t n = 0;
  for (std::string_view k : r.keys) {
    KV_CHECK(!k.empty() && k.size() <= kMaxKeyLen && inside(used, k));
    ++n;
  }
  KV_CHECK(n == r.keys.size() && n <= kMaxGetKeys);
}

// Parses `in` as a pipelined stream until it needs more; checks each request, and that the
// first one parses the same from every prefix in `cuts`.
inline void check_stream(std::string_view in, const Limits& limits = {}) {
  const Parsed whole = parse(in, limits);
  check_one(in, whole);
  const size_t cuts[] = {in.size() / 2, in.size() ? in.size() - 1 : 0,
                         in.empty() ? 0 : uint8_t(in[0]) % in.size(), whole.consumed / 2};
  const auto same = [&whole](const Parsed& p) {
    KV_CHECK(p.status == whole.status && p.consumed == whole.consumed);
    KV_CHECK(p.reply == whole.reply && p.close == whole.close && p.noreply == whole.noreply);
    KV_CHECK(p.req.cmd == whole.req.cmd && p.req.key == whole.req.key);
  };
  for (size_t k : cuts) {
    if (k >= in.size()) continue;
    const Parsed p = parse(in.substr(0, k), limits);
    check_one(in.substr(0, k), p);
    if (p.status != Status::need_more) {
      same(p);
    } else if (p.need == 0) {
      same(parse(in, limits, k));  // resuming the newline scan changes nothing
    }
  }
  std::string_view rest = in;
  for (int i = 0; i < 64 && !rest.empty(); ++i) {
    const Parsed p = parse(rest, limits);
    check_one(rest, p);
    if (p.status == Status::need_more || p.close || p.consumed > rest.size()) break;
    rest.remove_prefix(p.consumed);
  }
}

}  // namespace cw::kv::proto::fuzz
