// libFuzzer target: bencode (app/services/swarm/bencode.hh). A document the strict decoder
// accepts is canonical, so re-encoding its tokens with the Writer gives the input back byte
// for byte; the lenient decoder accepts it too with the same tokens; every token lies inside
// the input and its skip index inside the token array.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "app/services/swarm/bencode.hh"
#include "tests/fuzz/swarm_fuzz_check.hh"

namespace be = cw::swarm::bencode;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::array<be::Token, 512> toks;
  static std::array<be::Token, 512> toks2;
  const be::Bytes in(data, size);
  be::Doc doc;
  const be::Limits strict{.max_depth = 16, .max_string = 4096};
  if (be::decode(in, toks, strict, doc) != be::Error::ok) return 0;
  SWARM_CHECK(doc.consumed == size && !doc.toks.empty());
  be::Doc lenient;
  SWARM_CHECK(be::decode(in, toks2, {.max_depth = 16, .max_string = 4096, .strict = false},
                         lenient) == be::Error::ok);
  SWARM_CHECK(lenient.toks.size() == doc.toks.size());

  std::vector<uint8_t> out(size);
  be::Writer w(out);
  uint32_t open[be::kMaxDepth];  // the `next` of each open container
  size_t depth = 0;
  const auto n = static_cast<uint32_t>(doc.toks.size());
  for (uint32_t i = 0; i < n; ++i) {
    for (; depth > 0 && open[depth - 1] == i; --depth) w.end();
    const be::Token& t = doc.at(i);
    SWARM_CHECK(t.begin < t.end && t.end <= size && t.next > i && t.next <= n);
    switch (t.type) {
      case be::Type::integer:
        SWARM_CHECK(t.next == i + 1);
        w.integer(t.value);
        break;
      case be::Type::string:
        SWARM_CHECK(t.next == i + 1);
        w.string(doc.str(i));
        break;
      case be::Type::list:
      case be::Type::dict:
        t.type == be::Type::list ? w.list() : w.dict();
        SWARM_CHECK(depth < be::kMaxDepth);
        open[depth++] = t.next;
        break;
    }
  }
  for (; depth > 0; --depth) w.end();
  SWARM_CHECK(w.ok() && w.size() == size && std::memcmp(out.data(), data, size) == 0);
  return 0;
}
