// What a service's config code is written against: the reader of its own [[service]] keys
// and the client sockets it declares. An interface so that services need neither toml++ nor
// the server's parser (app/server/config.cc implements it). Setup-only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/runtime/registry.hh"

namespace cw::rt {

// One [[service]] table's own keys, as the service's parser reads them. Each reader returns
// empty when the key is absent or wrong (then it has recorded an error naming the key as
// "<file>:<line>: service[i].<key>: <what>"; the first error is the one reported).
class ServiceKeys {
 public:
  virtual ~ServiceKeys() = default;
  virtual std::optional<int64_t> integer(std::string_view key, int64_t lo, int64_t hi) = 0;
  virtual std::optional<std::string> string(std::string_view key) = 0;
  virtual std::optional<bool> boolean(std::string_view key) = 0;
  virtual std::optional<std::vector<std::string>> strings(std::string_view key) = 0;
  // Bytes: an integer or "64KiB"; milliseconds: "250ms", "5s" (as in [runtime]).
  virtual std::optional<uint64_t> size(std::string_view key, uint64_t lo, uint64_t hi) = 0;
  virtual std::optional<uint64_t> duration_ms(std::string_view key, uint64_t max_ms) = 0;
  // A value the service rejects for its own reasons.
  virtual void fail(std::string_view key, const std::string& what) = 0;
};

// A client socket a service declares from its options. `key` names the config key that set
// its affinity (for the error when that worker does not exist); `line` is filled by the parser.
struct ClientSocket {
  SocketDecl decl;  // server = false
  std::string_view key;
  int line = 0;
};

// The one worker that holds a service's state (its timers, its sessions), and the key that
// chose it: the parser fills `line` and refuses a worker that does not exist, naming the key.
// Unlike a ClientSocket it opens no socket. kAllWorkers: the service pins nothing.
struct WorkerKey {
  int worker = kAllWorkers;
  std::string_view key;
  int line = 0;
};

}  // namespace cw::rt
