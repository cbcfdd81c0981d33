// The corewire server's configuration: a TOML file (docs/configuration.md) plus command-line
// overrides, validated completely at start-up. Setup-only code: it may allocate and it
// reports every problem as one line naming where it is ("<file>:<line>: <key>: <what>").
//
// Order of precedence: built-in defaults < config file < command line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/runtime/worker.hh"
#include "app/server/service_type.hh"
#include "control/control_config.hh"
#include "dataplane/io.hh"
#include "dataplane/result.hh"

namespace cw::server {

// Limits on configurable values (what validation enforces).
inline constexpr uint32_t kMaxWorkers = 256;
inline constexpr int kMaxCore = 1023;                                 // CPU_SETSIZE - 1
inline constexpr uint32_t kMaxConnsPerWorker = 1u << 24;              // ConnId has a 24-bit slot
inline constexpr uint64_t kMinConnOutLimit = 4096;                    // bytes
inline constexpr uint64_t kMaxConnOutLimit = 1ull << 30;              // bytes
inline constexpr uint64_t kMaxWorkerOutLimit = 64ull << 30;           // bytes
inline constexpr uint64_t kMinStreamBufferLimit = 64 * 1024;          // bytes
inline constexpr uint32_t kMaxTimers = 1u << 24;                      // per worker
inline constexpr uint64_t kMaxIdleTimeoutMs = 86'400'000;             // one day
inline constexpr uint32_t kMinRxBuffers = 64, kMaxRxBuffers = 32768;  // power of two
inline constexpr uint32_t kMinRxBufferSize = 512, kMaxRxBufferSize = 65536;  // bytes
inline constexpr uint32_t kMinTxBuffers = 64, kMaxTxBuffers = 1u << 20;
inline constexpr uint32_t kMaxBurst = 1024;
inline constexpr uint32_t kMaxCoalesceUs = 10'000;     // io_uring interrupt moderation bound
inline constexpr uint32_t kMaxFragTimeoutMs = 60'000;  // DPDK reassembly timeout bound

// Where a service listens on one transport, as written. The address is filled from
// [runtime] listen (or --listen) when the config gave only a port.
struct ListenSpec {
  std::optional<uint32_t> addr_be;  // network byte order; empty = the default address
  uint16_t port = 0;                // host byte order; 0 = any free port
  int line = 0;                     // source line of the key (0 = built-in/command line)
};

struct ServiceConfig {
  std::string name;                   // a registered service name (app/server/services.hh)
  std::optional<ListenSpec> udp;      // empty = not served on UDP
  std::optional<ListenSpec> tcp;      // empty = not served on TCP
  bool enabled = true;                // false: requests refused (counted); SIGHUP applies changes
  int line = 0;                       // line of the [[service]] header
  ServiceOptions options;             // its own keys, typed by the service (null: it has none)
  std::vector<ClientSocket> clients;  // client sockets it declared from its options
  WorkerKey owner;                    // the worker its state is pinned to (ServiceType::owner)
  bool builtin = false;               // from the built-in default (the file had no [[service]])
  // Its type's check of a listen address (ServiceType::check_listen), or nullptr.
  std::string (*check_listen)(const void* options, uint32_t addr_be) = nullptr;
  std::string own_keys;  // its own keys as written ("service_id=7"), for describe()
};

// The [dpdk] section (docs/dpdk.md), used by backend "dpdk" only. Kept in plain types so
// parsing needs no DPDK headers; main maps it onto dp::DpdkConfig. Unset values keep the
// backend's own defaults.
struct DpdkSection {
  int line = 0;                        // of the [dpdk] header; 0 = not in the file
  std::vector<std::string> eal;        // EAL arguments (plus the command line's after "--")
  std::string port;                    // PCI address, vdev devargs or port number
  std::vector<std::string> addresses;  // "a.b.c.d/len", 1..kMaxDpdkAddresses
  std::optional<uint32_t> gateway_be;
  std::optional<uint32_t> mtu, rx_desc, tx_desc, arp_entries, arp_queue, frag_flows,
      frag_timeout_ms;
  std::optional<bool> arp_learn_from_requests;
};
inline constexpr size_t kMaxDpdkAddresses = 8;

struct ServerConfig {
  std::string source = "<built-in default>";  // the file name, for messages
  // The [runtime] section; main copies these into cw::rt::RuntimeConfig (launch.hh). Kept
  // apart from launch.hh so that parsing does not pull in the kernel backends.
  std::string backend = "auto";  // auto | io_uring | epoll | dpdk (never chosen by auto)
  dp::IoConfig io;               // workers, cores, busy_poll, per-connection limits
  rt::LoopConfig loop;           // burst size
  int cores_line = 0;            // where runtime.cores was set (-1: --cores), for messages
  uint32_t listen_be = 0;        // default service address (network byte order)
  bool listen_set = false;       // listen came from the file or --listen (else: the default)
  std::string log_level = "info";
  std::vector<ServiceConfig> services;
  DpdkSection dpdk;
  // [control] (control/control_config.hh): run dir, control socket, stats segment. Without
  // the section, management runs at the default paths but is not required to start.
  ctl::ControlConfig control = ctl::default_control_config();
  bool control_explicit = false;
  // Deprecated keys the file used, one "<file>:<line>: <key> is deprecated: write ..." each
  // (the [control] ones without a line); main logs them as warnings.
  std::vector<std::string> deprecations;

  // After finalize(): the endpoint each service transport binds (port may be 0).
  dp::Endpoint endpoint(const ListenSpec& l) const {
    return dp::Endpoint{l.addr_be.value_or(listen_be), uint16_t(__builtin_bswap16(l.port))};
  }
};

// Values given on the command line; each set one wins over the file.
struct Overrides {
  std::optional<std::string> backend;
  std::optional<std::string> cores;  // "1" or "0,2,3"
  std::optional<unsigned> workers;
  std::optional<std::string> listen;  // IPv4 address
  std::optional<bool> busy_poll;
  std::optional<std::string> log_level;
  std::vector<std::string> eal_extra;  // arguments after "--": appended to dpdk.eal
};

// The built-in configuration used when no file is given: one unpinned worker, backend auto
// (io_uring, else epoll), 127.0.0.1, sockperf-echo on UDP+TCP 11111 and echo on 11112.
ServerConfig default_config();
// The same, as TOML text (docs/corewire.example.toml is a commented copy).
std::string_view default_config_toml();

// Parses TOML text; `source` names it in messages. Checks keys, types and ranges. Service
// names and their own keys are checked against `services` (default: the server's registry).
Result<ServerConfig> parse_config(std::string_view text, const std::string& source);
Result<ServerConfig> parse_config(std::string_view text, const std::string& source,
                                  const ServiceCatalog& services);
// Reads and parses a file.
Result<ServerConfig> load_config_file(const std::string& path);
// Applies command-line values over cfg (errors name the flag).
Result<void> apply_overrides(ServerConfig& cfg, const Overrides& o);
// Checks what needs the whole picture (duplicate endpoints, core list vs. this machine,
// client socket affinities vs. the worker count).
// Call once after apply_overrides.
Result<void> finalize(ServerConfig& cfg);

// Size ("4MiB", "64KiB", "512", "1GB") in bytes; durations (ctl::parse_duration_ns: "300s",
// "5m", "250ms", "0") in whole milliseconds. Empty when the text is not one.
std::optional<uint64_t> parse_size(std::string_view s);
std::optional<uint64_t> parse_duration_ms(std::string_view s);

// "0,2,5" -> {0,2,5}; empty on a bad list (message in err).
std::optional<std::vector<int>> parse_core_list(std::string_view s, std::string& err);

// What the command line asked for.
struct CommandLine {
  std::optional<std::string> config_path;
  bool check_only = false;  // --check-config: validate, print a summary, exit
  Overrides overrides;
  // Set when parsing already decided the outcome (--help, --version, a usage error): print
  // `output` (to stdout if exit_code == 0, else stderr) and exit with exit_code.
  std::optional<int> exit_code;
  std::string output;
};
CommandLine parse_command_line(int argc, const char* const* argv);

// Everything up to a runnable config: file or default, overrides, finalize. The error
// message is the part after "corewire: config error: ".
Result<ServerConfig> load(const CommandLine& cl);

// A one-line human summary per item (for --check-config and the start-up log).
std::vector<std::string> describe(const ServerConfig& cfg);

}  // namespace cw::server
