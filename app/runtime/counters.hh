// Counters a service declares by name (memcached's get_hits, a store's items): they reach the
// stats segment, `corewirectl stats` and /metrics with no edit of the segment layout.
//
// A service type declares them once, statically, in the order of its own indexes:
//   enum : uint32_t { kGetHits, kItems };
//   static constexpr rt::CounterDecl kCounters[] = {
//       {"get_hits", "GET requests that found their key"},
//       {"items", "Items stored", rt::CounterKind::gauge}};
// and bumps them through its context: ctx.counters[kGetHits].add(), ctx.counters[kItems].set(n).
// The worker points ctx.counters at this (worker, service)'s own block before every call into
// the service; only that worker writes it (plain stores, no atomic read-modify-write), anyone
// reads it with relaxed loads, like every dp::Counter. Declarations are checked at compile
// time (check_counter_decls), so a bad name never reaches the segment.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "dataplane/io.hh"

namespace cw::rt {

using dp::Counter;

enum class CounterKind : uint8_t {
  counter = 0,  // a total that only grows (exported with the suffix _total)
  gauge = 1,    // a level that goes up and down
};

struct CounterDecl {
  const char* name;  // [a-z][a-z0-9_]*, below kCounterNameBytes, unique within the service
  const char* help;  // one line of printable ASCII, below kCounterHelpBytes
  CounterKind kind = CounterKind::counter;
};

inline constexpr uint32_t kMaxServiceCounters = 96;  // declared counters per service type
inline constexpr uint32_t kCounterNameBytes = 56;    // segment bytes per name, NUL included
inline constexpr uint32_t kCounterHelpBytes = 128;   // segment bytes per help text, NUL included

// Names the runtime already exports for every service (ServiceStats and its histogram,
// corewire_service_<name>...); a declared counter may not take them.
inline constexpr std::string_view kReservedCounterNames[] = {"requests", "responses", "errors",
                                                             "malformed", "dropped"};
inline constexpr std::string_view kReservedCounterPrefix = "latency_seconds";

// Whether name may be a declared counter's name (also applied by segment readers to the
// untrusted name table).
constexpr bool valid_counter_name(std::string_view n) {
  if (n.empty() || n.size() >= kCounterNameBytes || n[0] < 'a' || n[0] > 'z') return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  if (n.ends_with("_total") || n.starts_with(kReservedCounterPrefix)) return false;
  for (auto r : kReservedCounterNames)
    if (n == r) return false;
  return true;
}
constexpr bool valid_counter_help(std::string_view h) {
  if (h.size() >= kCounterHelpBytes) return false;
  for (char c : h)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

// Not constexpr: reaching it while checking a declaration at compile time is the error, and
// the compiler's message shows the reason passed.
inline bool counter_declaration_error(const char* why) {
  return why == nullptr;
}

template <size_t N>
consteval bool check_counter_decls(const CounterDecl (&d)[N]) {
  if (N > kMaxServiceCounters) return counter_declaration_error("more than kMaxServiceCounters");
  for (size_t i = 0; i < N; ++i) {
    if (!d[i].name || !valid_counter_name(d[i].name))
      return counter_declaration_error(
          "bad counter name: [a-z][a-z0-9_]*, < 56 bytes, not "
          "reserved, no _total suffix");
    if (!d[i].help || !valid_counter_help(d[i].help))
      return counter_declaration_error("bad counter help: printable ASCII, < 128 bytes");
    for (size_t j = 0; j < i; ++j)
      if (std::string_view(d[i].name) == d[j].name)
        return counter_declaration_error("counter declared twice");
  }
  return true;
}

// The declarations of service type S: S::kCounters, or none.
template <class S>
constexpr std::span<const CounterDecl> counter_decls_of() {
  if constexpr (requires { S::kCounters; }) {
    static_assert(check_counter_decls(S::kCounters));
    return S::kCounters;
  } else {
    return {};
  }
}

// One worker's declared counters: a block per service (index as in the worker's service
// table), sized at setup from the services' declarations. Each block starts on its own
// cache line. Written by the owning worker only; readable from any thread.
class ServiceCounterBlocks {
 public:
  // Setup (allocates): one block per service of `services` (a vector of service variants).
  template <class Services>
  void size_for(const std::vector<Services>& services) {
    decls_.clear();
    first_line_.clear();
    size_t lines = 0;
    for (const auto& s : services) {
      const auto d = std::visit(
          [](const auto& svc) { return counter_decls_of<std::decay_t<decltype(svc)>>(); }, s);
      decls_.push_back(d);
      first_line_.push_back(lines);
      lines += (d.size() + kPerLine - 1) / kPerLine;
    }
    lines_ = std::make_unique<Line[]>(lines + 1);  // + 1: a last service without counters
  }

  size_t services() const { return decls_.size(); }
  // Empty for a service index this worker does not have.
  std::span<const CounterDecl> decls(uint16_t s) const {
    return s < decls_.size() ? decls_[s] : std::span<const CounterDecl>{};
  }
  // Owner worker: service s's block, indexed like its kCounters.
  Counter* block(uint16_t s) { return lines_[first_line_[s]].c; }
  // Any thread: the same block, read-only.
  std::span<const Counter> values(uint16_t s) const {
    if (s >= decls_.size()) return {};
    return {lines_[first_line_[s]].c, decls_[s].size()};
  }

 private:
  static constexpr size_t kPerLine = 64 / sizeof(Counter);
  struct alignas(64) Line {
    Counter c[kPerLine];
  };
  std::vector<std::span<const CounterDecl>> decls_;
  std::vector<size_t> first_line_;
  std::unique_ptr<Line[]> lines_;
};

}  // namespace cw::rt
