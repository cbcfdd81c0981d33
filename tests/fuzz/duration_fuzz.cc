// libFuzzer target: the config's duration syntax (ctl::parse_duration_ns, duration_text,
// duration_from) on arbitrary text. Invariants: a parsed duration prints as text that parses
// back to the same value; duration_from accepts only whole units within [lo, hi] and agrees
// with parse_duration_ns; nothing crashes or overflows silently.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "control/control_config.hh"

#define CHECK(c)            \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  const auto ns = cw::ctl::parse_duration_ns(s);
  if (ns) {
    const std::string text = cw::ctl::duration_text(*ns);
    CHECK(cw::ctl::parse_duration_ns(text) == ns);
  }
  // As a key kept in ms, from 1ms to 1h (the shape of control.publish).
  constexpr uint64_t kMs = 1'000'000, lo = 1, hi = 3'600'000;
  const toml::value<std::string> node{std::string(s)};
  auto r = cw::ctl::duration_from(node, kMs, lo, hi);
  if (r) {
    CHECK(ns && *ns % kMs == 0 && *ns / kMs == r.value());
    CHECK(r.value() >= lo && r.value() <= hi);
  } else {
    CHECK(!ns || *ns % kMs != 0 || *ns / kMs < lo || *ns / kMs > hi);
  }
  return 0;
}
