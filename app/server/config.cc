// Parsing and validating the server config. Setup-only: exceptions from toml++ and CLI11 are
// caught here and turned into one-line errors; nothing here runs on the datapath.
#include "app/server/config.hh"

#include <arpa/inet.h>
#include <sched.h>

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "app/server/services.hh"
#include "control/logging.hh"
#include "control/version.hh"

namespace cw::server {
namespace {

constexpr std::string_view kDefaultToml = R"(# corewire built-in default configuration
[runtime]
backend = "auto"
workers = 1
busy_poll = false
listen = "127.0.0.1"
max_conns = 16384
conn_out_limit = "4MiB"
idle_timeout = "300s"

[log]
level = "info"

[[service]]
name = "sockperf-echo"
udp = 11111
tcp = 11111

[[service]]
name = "echo"
udp = 11112
tcp = 11112

[[service]]
name = "pubsub"
tcp = 4222
)";

// "<where>: <key>: <what>" where <where> is "file:line", "file" or "command line".
Error where_error(const std::string& src, int line, std::string_view key, const std::string& what) {
  std::string m = src;
  if (line > 0) m += ":" + std::to_string(line);
  m += ": ";
  m += key;
  m += ": ";
  m += what;
  return make_error(std::move(m));
}

Error cli_error(std::string_view flag, const std::string& what) {
  return where_error("command line", 0, flag, what);
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

std::optional<uint32_t> parse_ipv4(std::string_view s) {
  in_addr a{};
  if (inet_pton(AF_INET, std::string(s).c_str(), &a) != 1) return std::nullopt;
  return a.s_addr;
}

std::string ipv4_text(uint32_t be) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a{};
  a.s_addr = be;
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

bool is_backend(std::string_view b) {
  return b == "auto" || b == "io_uring" || b == "epoll" || b == "dpdk";
}

// "a.b.c.d/len" (len 0..32, default 32).
bool is_cidr(std::string_view s) {
  const size_t slash = s.find('/');
  if (!parse_ipv4(s.substr(0, slash))) return false;
  if (slash == std::string_view::npos) return true;
  const std::string_view l = s.substr(slash + 1);
  int len = -1;
  auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), len);
  return !l.empty() && ec == std::errc() && p == l.data() + l.size() && len >= 0 && len <= 32;
}
// Duration resolutions (ns per unit) of the keys kept in ms and in us.
constexpr uint64_t kMs = 1'000'000, kUs = 1'000;

bool is_log_level(std::string_view l) {
  return log::is_level(l);
}

// Reads one config file's tables into a ServerConfig; remembers the first error.
class Parser {
 public:
  Parser(std::string src, const ServiceCatalog& services)
      : src_(std::move(src)), services_(services) {
    cfg_.listen_be = htonl(INADDR_LOOPBACK);
  }

  Result<ServerConfig> run(std::string_view text) {
    toml::table root;
    try {
      root = toml::parse(text, src_);
    } catch (const toml::parse_error& e) {
      return where_error(src_, int(e.source().begin.line), "syntax", std::string(e.description()));
    }
    for (auto&& [k, v] : root) {
      const int line = int(k.source().begin.line);
      if (k == "runtime") {
        if (auto* t = v.as_table())
          runtime(*t);
        else
          type(line, "runtime", v, "a table ([runtime])");
      } else if (k == "log") {
        if (auto* t = v.as_table())
          log(*t);
        else
          type(line, "log", v, "a table ([log])");
      } else if (k == "dpdk") {
        if (auto* t = v.as_table())
          dpdk(*t, line);
        else
          type(line, "dpdk", v, "a table ([dpdk])");
      } else if (k == "service") {
        auto* a = v.as_array();
        if (!a || !a->is_array_of_tables()) {
          type(line, "service", v, "an array of tables ([[service]])");
        } else {
          for (size_t i = 0; i < a->size(); ++i) service(*a->get(i)->as_table(), i);
        }
      } else if (k == "control") {
        auto c = ctl::control_config_from(root);  // reads [control]; errors name the key
        if (c) {
          cfg_.control = c.value();
          cfg_.control_explicit = true;
          for (const auto& d : cfg_.control.deprecations)
            cfg_.deprecations.push_back(src_ + ": " + d);
        } else {
          fail(line, "control", c.error().message);
        }
      } else {
        fail(line, k.str(), "unknown section (known: runtime, log, service, dpdk, control)");
      }
      if (err_) return *err_;
    }
    if (err_) return *err_;
    cfg_.source = src_;
    return std::move(cfg_);
  }

 private:
  void fail(int line, std::string_view key, const std::string& what) {
    if (!err_) err_ = where_error(src_, line, key, what);
  }
  void type(int line, std::string_view key, const toml::node& v, std::string_view want) {
    fail(line, key, "expected " + std::string(want) + ", got " + type_name(v));
  }

  // An integer in [lo, hi].
  std::optional<int64_t> integer(int line, const std::string& key, const toml::node& v, int64_t lo,
                                 int64_t hi) {
    auto* i = v.as_integer();
    if (!i) {
      type(line, key, v, "an integer");
      return std::nullopt;
    }
    const int64_t x = i->get();
    if (x < lo || x > hi) {
      fail(line, key,
           std::to_string(x) + " is out of range [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "]");
      return std::nullopt;
    }
    return x;
  }
  std::optional<std::string> string(int line, const std::string& key, const toml::node& v) {
    auto* s = v.as_string();
    if (!s) {
      type(line, key, v, "a string");
      return std::nullopt;
    }
    return s->get();
  }
  // Bytes: an integer or a size string ("4MiB"), in [lo, hi].
  std::optional<uint64_t> size(int line, const std::string& key, const toml::node& v, uint64_t lo,
                               uint64_t hi) {
    std::optional<uint64_t> x;
    if (auto* i = v.as_integer()) {
      if (i->get() >= 0) x = uint64_t(i->get());
    } else if (auto* s = v.as_string()) {
      x = parse_size(s->get());
      if (!x) {
        fail(line, key, "'" + s->get() + "' is not a size (e.g. 65536, \"64KiB\", \"4MiB\")");
        return std::nullopt;
      }
    } else {
      type(line, key, v, "a size (integer bytes or a string like \"4MiB\")");
      return std::nullopt;
    }
    if (!x || *x < lo || *x > hi) {
      fail(line, key,
           "out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "] bytes");
      return std::nullopt;
    }
    return x;
  }
  // A duration in whole units of unit_ns (ctl::duration_from: a string with a unit or integer
  // seconds), in [lo, hi] units.
  std::optional<uint64_t> duration(int line, const std::string& key, const toml::node& v,
                                   uint64_t unit_ns, uint64_t lo, uint64_t hi) {
    if (!v.is_integer() && !v.is_string()) {
      type(line, key, v, "a duration (a string like \"250ms\" or integer seconds)");
      return std::nullopt;
    }
    auto x = ctl::duration_from(v, unit_ns, lo, hi);
    if (!x) {
      fail(line, key, x.error().message);
      return std::nullopt;
    }
    return *x;
  }
  // A duration key that replaced an integer one (`old`, in units of unit_ns): both are read,
  // the old one with a deprecation naming the new key and the value written its way.
  std::optional<uint64_t> renamed_duration(const toml::table& t, std::string_view section,
                                           std::string_view now, std::string_view old,
                                           uint64_t unit_ns, uint64_t lo, uint64_t hi) {
    const std::string base = std::string(section) + ".";
    const toml::node* n = t.get(now);
    const toml::node* o = t.get(old);
    if (n && o) {
      fail(int(o->source().begin.line), base + std::string(old),
           "give " + std::string(now) + " or its deprecated form " + std::string(old) +
               ", not both");
      return std::nullopt;
    }
    if (n)
      return duration(int(n->source().begin.line), base + std::string(now), *n, unit_ns, lo, hi);
    if (!o) return std::nullopt;
    const int line = int(o->source().begin.line);
    auto x = integer(line, base + std::string(old), *o, int64_t(lo), int64_t(hi));
    if (x)
      cfg_.deprecations.push_back(src_ + ":" + std::to_string(line) + ": " + base +
                                  std::string(old) + " is deprecated: write " + std::string(now) +
                                  " = \"" + ctl::duration_text(uint64_t(*x) * unit_ns) + "\"");
    return x ? std::optional<uint64_t>(uint64_t(*x)) : std::nullopt;
  }

  void runtime(const toml::table& t) {
    int cores_line = 0, workers_line = 0, low_water_line = 0;
    for (auto&& [k, v] : t) {
      const int line = int(k.source().begin.line);
      const std::string key = "runtime." + std::string(k.str());
      if (k == "backend") {
        if (auto s = string(line, key, v)) {
          if (is_backend(*s))
            cfg_.backend = *s;
          else
            fail(line, key, "unknown backend '" + *s + "' (auto, io_uring, epoll, dpdk)");
        }
      } else if (k == "cores") {
        cores_line = line;
        cfg_.cores_line = line;
        auto* a = v.as_array();
        if (!a) {
          type(line, key, v, "an array of core numbers (e.g. [1] or [0, 1])");
          continue;
        }
        if (a->empty()) fail(line, key, "the list is empty (give at least one core)");
        std::vector<int> cores;
        std::set<int> seen;
        for (auto& e : *a) {
          auto c = integer(int(e.source().begin.line), key, e, 0, kMaxCore);
          if (!c) break;
          if (!seen.insert(int(*c)).second)
            fail(line, key, "core " + std::to_string(*c) + " is listed twice");
          cores.push_back(int(*c));
        }
        if (cores.size() > kMaxWorkers)
          fail(line, key, "more than " + std::to_string(kMaxWorkers) + " cores");
        cfg_.io.cores = cores;
        cfg_.io.workers = unsigned(cores.size());
      } else if (k == "workers") {
        workers_line = line;
        if (auto w = integer(line, key, v, 1, kMaxWorkers)) cfg_.io.workers = unsigned(*w);
      } else if (k == "busy_poll" || k == "udp_gso" || k == "udp_gro") {
        if (auto* b = v.as_boolean())
          (k == "busy_poll" ? cfg_.io.busy_poll
           : k == "udp_gso" ? cfg_.io.udp_gso
                            : cfg_.io.udp_gro) = b->get();
        else
          type(line, key, v, "a boolean (true or false)");
      } else if (k == "listen") {
        if (auto s = string(line, key, v)) {
          if (auto a = parse_ipv4(*s))
            cfg_.listen_be = *a;
          else
            fail(line, key, "'" + *s + "' is not an IPv4 address");
        }
      } else if (k == "max_conns") {
        if (auto x = integer(line, key, v, 1, kMaxConnsPerWorker)) cfg_.io.max_conns = uint32_t(*x);
      } else if (k == "conn_out_limit") {
        if (auto x = size(line, key, v, kMinConnOutLimit, kMaxConnOutLimit))
          cfg_.io.conn_out_limit = uint32_t(*x);
      } else if (k == "worker_out_limit") {
        if (auto x = size(line, key, v, kMinConnOutLimit, kMaxWorkerOutLimit))
          cfg_.io.worker_out_limit = *x;
      } else if (k == "conn_low_water") {
        if (auto x = size(line, key, v, 0, kMaxConnOutLimit)) {
          cfg_.io.conn_low_water = uint32_t(*x);
          low_water_line = line;
        }
      } else if (k == "stream_buffer_limit") {
        if (auto x = size(line, key, v, kMinStreamBufferLimit, kMaxWorkerOutLimit))
          cfg_.loop.tail_bytes = *x;
      } else if (k == "max_timers") {
        if (auto x = integer(line, key, v, 1, kMaxTimers)) cfg_.loop.max_timers = uint32_t(*x);
      } else if (k == "idle_timeout") {
        if (auto x = duration(line, key, v, kMs, 0, kMaxIdleTimeoutMs))
          cfg_.io.idle_timeout_ms = uint32_t(*x);
      } else if (k == "rx_buffers") {
        if (auto x = integer(line, key, v, kMinRxBuffers, kMaxRxBuffers)) {
          if ((*x & (*x - 1)) != 0) fail(line, key, std::to_string(*x) + " is not a power of two");
          cfg_.io.rx_buffers = uint32_t(*x);
        }
      } else if (k == "rx_buffer_size") {
        if (auto x = size(line, key, v, kMinRxBufferSize, kMaxRxBufferSize))
          cfg_.io.rx_buffer_size = uint32_t(*x);
      } else if (k == "tx_buffers") {
        if (auto x = integer(line, key, v, kMinTxBuffers, kMaxTxBuffers))
          cfg_.io.tx_buffers = uint32_t(*x);
      } else if (k == "coalesce" || k == "coalesce_us") {
        if (k == "coalesce" || !t.contains("coalesce"))  // read once (and a clash reported once)
          if (auto x =
                  renamed_duration(t, "runtime", "coalesce", "coalesce_us", kUs, 0, kMaxCoalesceUs))
            cfg_.io.coalesce_us = uint32_t(*x);
      } else if (k == "burst") {
        if (auto x = integer(line, key, v, 1, kMaxBurst)) cfg_.loop.burst = uint32_t(*x);
      } else {
        fail(line, key,
             "unknown key (known: backend, cores, workers, busy_poll, listen, max_conns, "
             "conn_out_limit, worker_out_limit, conn_low_water, stream_buffer_limit, "
             "max_timers, idle_timeout, rx_buffers, rx_buffer_size, tx_buffers, burst, "
             "coalesce, udp_gso, udp_gro)");
      }
    }
    // The default low-water mark follows a small conn_out_limit; a configured one must be
    // below it, or a writable event could never be owed.
    if (!low_water_line && cfg_.io.conn_low_water >= cfg_.io.conn_out_limit)
      cfg_.io.conn_low_water = cfg_.io.conn_out_limit / 2;
    if (low_water_line && cfg_.io.conn_low_water >= cfg_.io.conn_out_limit)
      fail(low_water_line, "runtime.conn_low_water",
           std::to_string(cfg_.io.conn_low_water) + " is not below conn_out_limit (" +
               std::to_string(cfg_.io.conn_out_limit) + ")");
    if (cores_line && workers_line)
      fail(std::max(cores_line, workers_line),
           cores_line > workers_line ? "runtime.cores" : "runtime.workers",
           "give either cores (pinned workers) or workers (unpinned), not both");
  }

  void log(const toml::table& t) {
    for (auto&& [k, v] : t) {
      const int line = int(k.source().begin.line);
      const std::string key = "log." + std::string(k.str());
      if (k == "level") {
        if (auto s = string(line, key, v)) {
          if (is_log_level(*s))
            cfg_.log_level = *s;
          else
            fail(line, key, "unknown level '" + *s + "' (" + log::levels_text(", ") + ")");
        }
      } else {
        fail(line, key, "unknown key (known: level)");
      }
    }
  }

  // A list of strings (EAL arguments, addresses).
  std::optional<std::vector<std::string>> strings(int line, const std::string& key,
                                                  const toml::node& v) {
    auto* a = v.as_array();
    if (!a) {
      type(line, key, v, "an array of strings");
      return std::nullopt;
    }
    std::vector<std::string> out;
    for (auto& e : *a) {
      auto x = string(int(e.source().begin.line), key, e);
      if (!x) return std::nullopt;
      out.push_back(*x);
    }
    return out;
  }

  void dpdk(const toml::table& t, int header_line) {
    DpdkSection& d = cfg_.dpdk;
    d.line = header_line;
    auto range = [&](int line, const std::string& key, const toml::node& v, int64_t lo, int64_t hi,
                     std::optional<uint32_t>& out) {
      if (auto x = integer(line, key, v, lo, hi)) out = uint32_t(*x);
    };
    for (auto&& [k, v] : t) {
      const int line = int(k.source().begin.line);
      const std::string key = "dpdk." + std::string(k.str());
      if (k == "eal") {
        if (auto x = strings(line, key, v)) d.eal = *x;
      } else if (k == "port") {
        if (auto x = string(line, key, v)) {
          if (x->empty()) fail(line, key, "empty (a PCI address, vdev devargs or port number)");
          d.port = *x;
        }
      } else if (k == "addresses") {
        if (auto x = strings(line, key, v)) {
          if (x->empty() || x->size() > kMaxDpdkAddresses)
            fail(line, key, "give 1 to " + std::to_string(kMaxDpdkAddresses) + " addresses");
          for (const auto& a : *x)
            if (!is_cidr(a)) fail(line, key, "'" + a + "' is not \"a.b.c.d/len\"");
          d.addresses = *x;
        }
      } else if (k == "gateway") {
        if (auto x = string(line, key, v)) {
          if (auto a = parse_ipv4(*x))
            d.gateway_be = *a;
          else
            fail(line, key, "'" + *x + "' is not an IPv4 address");
        }
      } else if (k == "mtu") {
        range(line, key, v, 576, 9000, d.mtu);
      } else if (k == "rx_desc") {
        range(line, key, v, 64, 32768, d.rx_desc);
      } else if (k == "tx_desc") {
        range(line, key, v, 64, 32768, d.tx_desc);
      } else if (k == "arp_entries") {
        range(line, key, v, 1, 65536, d.arp_entries);
      } else if (k == "arp_queue") {
        range(line, key, v, 1, 65536, d.arp_queue);
      } else if (k == "frag_flows") {
        range(line, key, v, 1, 65536, d.frag_flows);
      } else if (k == "frag_timeout" || k == "frag_timeout_ms") {
        if (k == "frag_timeout" || !t.contains("frag_timeout"))
          if (auto x = renamed_duration(t, "dpdk", "frag_timeout", "frag_timeout_ms", kMs, 1,
                                        kMaxFragTimeoutMs))
            d.frag_timeout_ms = uint32_t(*x);
      } else if (k == "arp_learn_from_requests") {
        if (auto* b = v.as_boolean())
          d.arp_learn_from_requests = b->get();
        else
          type(line, key, v, "a boolean (true or false)");
      } else {
        fail(line, key,
             "unknown key (known: eal, port, addresses, gateway, mtu, rx_desc, tx_desc, "
             "arp_entries, arp_queue, arp_learn_from_requests, frag_flows, frag_timeout)");
      }
    }
  }

  // udp/tcp = 11111 or "addr:port".
  std::optional<ListenSpec> listen(int line, const std::string& key, const toml::node& v) {
    ListenSpec l;
    l.line = line;
    if (v.is_integer()) {
      auto p = integer(line, key, v, 0, 65535);
      if (!p) return std::nullopt;
      l.port = uint16_t(*p);
      return l;
    }
    if (auto* s = v.as_string()) {
      auto ep = dp::parse_endpoint(s->get());
      if (!ep) {
        fail(line, key, "'" + s->get() + "' is not a port or \"a.b.c.d:port\"");
        return std::nullopt;
      }
      l.addr_be = ep->addr_be;
      l.port = ntohs(ep->port_be);
      return l;
    }
    type(line, key, v, "a port number or a string \"a.b.c.d:port\"");
    return std::nullopt;
  }

  // A service's own keys, read from its [[service]] table by the service's parse_options.
  class Keys final : public ServiceKeys {
   public:
    Keys(Parser& p, const toml::table& t, const std::string& base) : p_(p), t_(t), base_(base) {}
    std::optional<int64_t> integer(std::string_view k, int64_t lo, int64_t hi) override {
      auto* v = t_.get(k);
      return v ? p_.integer(line(*v), key(k), *v, lo, hi) : std::nullopt;
    }
    std::optional<std::string> string(std::string_view k) override {
      auto* v = t_.get(k);
      return v ? p_.string(line(*v), key(k), *v) : std::nullopt;
    }
    std::optional<std::vector<std::string>> strings(std::string_view k) override {
      auto* v = t_.get(k);
      return v ? p_.strings(line(*v), key(k), *v) : std::nullopt;
    }
    std::optional<bool> boolean(std::string_view k) override {
      auto* v = t_.get(k);
      if (!v) return std::nullopt;
      if (auto* b = v->as_boolean()) return b->get();
      p_.type(line(*v), key(k), *v, "a boolean (true or false)");
      return std::nullopt;
    }
    std::optional<uint64_t> size(std::string_view k, uint64_t lo, uint64_t hi) override {
      auto* v = t_.get(k);
      return v ? p_.size(line(*v), key(k), *v, lo, hi) : std::nullopt;
    }
    std::optional<uint64_t> duration_ms(std::string_view k, uint64_t max_ms) override {
      auto* v = t_.get(k);
      return v ? p_.duration(line(*v), key(k), *v, kMs, 0, max_ms) : std::nullopt;
    }
    void fail(std::string_view k, const std::string& what) override {
      auto* v = t_.get(k);
      p_.fail(v ? line(*v) : int(t_.source().begin.line), key(k), what);
    }
    int line_of(std::string_view k) const {
      auto* v = t_.get(k);
      return v ? line(*v) : int(t_.source().begin.line);
    }

   private:
    static int line(const toml::node& v) { return int(v.source().begin.line); }
    std::string key(std::string_view k) const { return base_ + "." + std::string(k); }
    Parser& p_;
    const toml::table& t_;
    const std::string& base_;
  };

  void service(const toml::table& t, size_t index) {
    ServiceConfig s;
    s.line = int(t.source().begin.line);
    const std::string base = "service[" + std::to_string(index) + "]";
    // The type decides which keys beyond the common ones are known.
    const ServiceType* st = nullptr;
    if (auto* n = t.get_as<std::string>("name")) st = services_.find(n->get());
    bool named = false;
    for (auto&& [k, v] : t) {
      const int line = int(k.source().begin.line);
      const std::string key = base + "." + std::string(k.str());
      if (k == "name") {
        if (auto n = string(line, key, v)) {
          named = true;
          if (st)
            s.name = *n;
          else
            fail(line, key, "unknown service '" + *n + "' (known: " + services_.names() + ")");
        }
      } else if (k == "udp") {
        s.udp = listen(line, key, v);
      } else if (k == "tcp") {
        s.tcp = listen(line, key, v);
      } else if (k == "enabled") {
        if (auto* b = v.as_boolean())
          s.enabled = b->get();
        else
          type(line, key, v, "a boolean (true or false)");
      } else if (!st || std::find(st->keys.begin(), st->keys.end(), k.str()) == st->keys.end()) {
        std::string known = "name, udp, tcp, enabled";
        if (st)
          for (auto sk : st->keys) known += ", " + std::string(sk);
        fail(line, key, "unknown key (known: " + known + ")");
      }
    }
    if (!named) fail(s.line, base + ".name", "missing (every [[service]] needs a name)");
    if (err_ || !st) return;
    for (auto sk : st->keys) {
      if (const toml::node* v = t.get(sk)) {
        std::ostringstream text;
        // Secrets (pubsub's password, token) are not logged.
        if (sk == "password" || sk == "token")
          text << "(set)";
        else
          v->visit([&](const auto& x) { text << x; });
        s.own_keys += (s.own_keys.empty() ? "" : " ") + std::string(sk) + "=" + text.str();
      }
    }
    Keys keys(*this, t, base);
    if (st->parse) s.options = st->parse(keys);
    if (st->clients) s.clients = st->clients(s.options.get());
    s.check_listen = st->check_listen;
    for (ClientSocket& c : s.clients) c.line = keys.line_of(c.key);
    if (st->owner) {
      s.owner = st->owner(s.options.get());
      s.owner.line = keys.line_of(s.owner.key);
    }
    if (!s.udp && !s.tcp && s.clients.empty())
      fail(s.line, base, "serves nothing (give udp and/or tcp)");
    cfg_.services.push_back(std::move(s));
  }

  std::string src_;
  const ServiceCatalog& services_;
  ServerConfig cfg_;
  std::optional<Error> err_;
};

std::string ms_text(uint64_t ms) {
  if (ms == 0) return "never";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace

std::string_view default_config_toml() {
  return kDefaultToml;
}

ServerConfig default_config() {
  // The built-in text is checked by the unit tests; a failure here is a build defect.
  auto r = Parser("<built-in default>", server_catalog()).run(kDefaultToml);
  if (!r) std::abort();
  return std::move(r.value());
}

Result<ServerConfig> parse_config(std::string_view text, const std::string& source) {
  return parse_config(text, source, server_catalog());
}

Result<ServerConfig> parse_config(std::string_view text, const std::string& source,
                                  const ServiceCatalog& services) {
  auto r = Parser(source, services).run(text);
  if (!r) return r;
  // A file without [[service]] tables serves the built-in services.
  if (r->services.empty()) {
    r->services = default_config().services;
    for (ServiceConfig& s : r->services) s.builtin = true;
  }
  return r;
}

Result<ServerConfig> load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return make_error(path + ": cannot read: " + std::strerror(errno));
  return parse_config(ss.str(), path);
}

std::optional<std::vector<int>> parse_core_list(std::string_view s, std::string& err) {
  std::vector<int> out;
  std::set<int> seen;
  size_t pos = 0;
  if (s.empty()) {
    err = "empty core list (e.g. 1 or 0,1)";
    return std::nullopt;
  }
  while (pos <= s.size()) {
    const size_t comma = s.find(',', pos);
    const std::string_view item =
        s.substr(pos, comma == std::string_view::npos ? s.npos : comma - pos);
    int c = -1;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), c);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || c < 0 ||
        c > kMaxCore) {
      err = "'" + std::string(item) + "' is not a core number in [0, " + std::to_string(kMaxCore) +
            "]";
      return std::nullopt;
    }
    if (!seen.insert(c).second) {
      err = "core " + std::to_string(c) + " is listed twice";
      return std::nullopt;
    }
    out.push_back(c);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  if (out.size() > kMaxWorkers) {
    err = "more than " + std::to_string(kMaxWorkers) + " cores";
    return std::nullopt;
  }
  return out;
}

namespace {
// Splits "123abc" into 123 and "abc"; empty when there is no leading number or it overflows.
std::optional<std::pair<uint64_t, std::string>> number_unit(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || p == s.data()) return std::nullopt;
  std::string unit(p, s.data() + s.size());
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  for (auto& ch : unit) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return std::pair{n, unit};
}
std::optional<uint64_t> scale(uint64_t n, uint64_t mul) {
  if (mul != 0 && n > UINT64_MAX / mul) return std::nullopt;
  return n * mul;
}
}  // namespace

std::optional<uint64_t> parse_size(std::string_view s) {
  auto nu = number_unit(s);
  if (!nu) return std::nullopt;
  const auto& [n, u] = *nu;
  if (u.empty() || u == "b") return n;
  if (u == "k" || u == "kib") return scale(n, 1ull << 10);
  if (u == "m" || u == "mib") return scale(n, 1ull << 20);
  if (u == "g" || u == "gib") return scale(n, 1ull << 30);
  if (u == "kb") return scale(n, 1000);
  if (u == "mb") return scale(n, 1000'000);
  if (u == "gb") return scale(n, 1000'000'000);
  return std::nullopt;
}

std::optional<uint64_t> parse_duration_ms(std::string_view s) {
  auto ns = ctl::parse_duration_ns(s);
  if (!ns || *ns % kMs != 0) return std::nullopt;
  return *ns / kMs;
}

Result<void> apply_overrides(ServerConfig& cfg, const Overrides& o) {
  if (o.backend) {
    if (!is_backend(*o.backend))
      return cli_error("--backend",
                       "unknown backend '" + *o.backend + "' (auto, io_uring, epoll, dpdk)");
    cfg.backend = *o.backend;
  }
  if (o.cores && o.workers)
    return cli_error("--cores", "give either --cores or --workers, not both");
  if (o.cores) {
    std::string err;
    auto c = parse_core_list(*o.cores, err);
    if (!c) return cli_error("--cores", err);
    cfg.io.cores = *c;
    cfg.io.workers = unsigned(c->size());
    cfg.cores_line = -1;
  }
  if (o.workers) {
    if (*o.workers < 1 || *o.workers > kMaxWorkers)
      return cli_error("--workers", std::to_string(*o.workers) + " is out of range [1, " +
                                        std::to_string(kMaxWorkers) + "]");
    cfg.io.cores.clear();
    cfg.io.workers = *o.workers;
  }
  if (o.listen) {
    auto a = parse_ipv4(*o.listen);
    if (!a) return cli_error("--listen", "'" + *o.listen + "' is not an IPv4 address");
    cfg.listen_be = *a;
    cfg.listen_set = true;
  }
  if (o.busy_poll) cfg.io.busy_poll = *o.busy_poll;
  cfg.dpdk.eal.insert(cfg.dpdk.eal.end(), o.eal_extra.begin(), o.eal_extra.end());
  if (o.log_level) {
    if (!is_log_level(*o.log_level))
      return cli_error("--log-level",
                       "unknown level '" + *o.log_level + "' (" + log::levels_text(", ") + ")");
    cfg.log_level = *o.log_level;
  }
  return {};
}

Result<void> finalize(ServerConfig& cfg) {
  // The DPDK backend has no defaults for where it attaches and which addresses it owns.
  if (cfg.backend == "dpdk") {
    const int line = cfg.dpdk.line;
    if (cfg.dpdk.port.empty())
      return where_error(cfg.source, line, line ? "dpdk.port" : "dpdk",
                         "backend dpdk needs [dpdk] port (a PCI address or vdev devargs)");
    if (cfg.dpdk.addresses.empty())
      return where_error(cfg.source, line, "dpdk.addresses",
                         "backend dpdk needs [dpdk] addresses (e.g. [\"10.0.0.2/24\"])");
    // Services listen on our own DPDK address unless told otherwise (127.0.0.1 is the
    // kernel's, not the DPDK port's).
    if (!cfg.listen_set) {
      const std::string& a = cfg.dpdk.addresses.front();
      cfg.listen_be = *parse_ipv4(std::string_view(a).substr(0, a.find('/')));
    }
  }
  // Pinned cores must be ones this process may run on.
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (!cfg.io.cores.empty() && sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
    for (int c : cfg.io.cores) {
      if (!CPU_ISSET(c, &allowed)) {
        std::string list;
        for (int i = 0; i < CPU_SETSIZE; ++i)
          if (CPU_ISSET(i, &allowed)) list += (list.empty() ? "" : ",") + std::to_string(i);
        return where_error(
            cfg.cores_line < 0 ? "command line" : cfg.source, std::max(cfg.cores_line, 0),
            cfg.cores_line < 0 ? "--cores" : "runtime.cores",
            "core " + std::to_string(c) + " is not available here (allowed: " + list + ")");
      }
    }
  }
  // A client socket bound to one worker, or a service's state pinned to one, needs that
  // worker to exist.
  for (size_t i = 0; i < cfg.services.size(); ++i) {
    std::vector<WorkerKey> pinned{cfg.services[i].owner};
    for (const ClientSocket& c : cfg.services[i].clients)
      pinned.push_back({c.decl.worker, c.key, c.line});
    for (const WorkerKey& w : pinned) {
      if (w.worker == rt::kAllWorkers || unsigned(w.worker) < cfg.io.workers) continue;
      return where_error(cfg.source, w.line,
                         "service[" + std::to_string(i) + "]." + std::string(w.key),
                         "worker " + std::to_string(w.worker) + " does not exist (" +
                             std::to_string(cfg.io.workers) + " worker(s))");
    }
  }
  // A service may refuse its listen address (pubsub without auth off loopback). A built-in
  // default service is left out instead, with a warning, so that a file giving only a
  // public `listen` still starts as it did before that service was a default.
  for (size_t i = 0; i < cfg.services.size();) {
    const ServiceConfig& s = cfg.services[i];
    std::string why;
    const ListenSpec* at = nullptr;
    const char* tn = "";
    for (auto [name, l] : {std::pair{"udp", &s.udp}, std::pair{"tcp", &s.tcp}}) {
      if (!*l || !s.check_listen || !why.empty()) continue;
      why = s.check_listen(s.options.get(), cfg.endpoint(**l).addr_be);
      at = &**l;
      tn = name;
    }
    if (why.empty()) {
      ++i;
      continue;
    }
    const std::string what = s.name + " on " + dp::to_string(cfg.endpoint(*at)) + ": " + why;
    if (!s.builtin)
      return where_error(cfg.source, at->line, "service[" + std::to_string(i) + "]." + tn, what);
    cfg.deprecations.push_back("built-in service " + what + "; it is not served");
    cfg.services.erase(cfg.services.begin() + long(i));
  }
  // No two services may claim the same transport endpoint (port 0 is always distinct).
  struct Claim {
    dp::Transport t;
    dp::Endpoint ep;
    size_t svc;
    int line;
  };
  std::vector<Claim> claims;
  for (size_t i = 0; i < cfg.services.size(); ++i) {
    const auto& s = cfg.services[i];
    for (auto [t, l] :
         {std::pair{dp::Transport::udp, &s.udp}, std::pair{dp::Transport::tcp, &s.tcp}}) {
      if (!*l) continue;
      const dp::Endpoint ep = cfg.endpoint(**l);
      const char* tn = t == dp::Transport::udp ? "udp" : "tcp";
      if (ep.port_be != 0) {
        for (const auto& c : claims) {
          const bool addr_clash =
              c.ep.addr_be == ep.addr_be || c.ep.addr_be == 0 || ep.addr_be == 0;
          if (c.t == t && c.ep.port_be == ep.port_be && addr_clash) {
            return where_error(cfg.source, (*l)->line, "service[" + std::to_string(i) + "]." + tn,
                               std::string(tn) + " " + dp::to_string(ep) +
                                   " is already used by service[" + std::to_string(c.svc) + "] (" +
                                   cfg.services[c.svc].name + ")" +
                                   (c.line ? " on line " + std::to_string(c.line) : ""));
          }
        }
      }
      claims.push_back({t, ep, i, (*l)->line});
    }
  }
  return {};
}

CommandLine parse_command_line(int argc, const char* const* argv) {
  CommandLine cl;
  CLI::App app{"corewire: a per-core, shared-nothing message server (echo over UDP and TCP).",
               "corewire"};
  app.set_version_flag("--version", version_line("corewire"));
  std::string config, backend, cores, listen, log_level;
  unsigned workers = 0;
  bool busy = false;
  auto* o_config = app.add_option("-c,--config", config, "TOML config file (default: built-in)");
  app.add_flag("--check-config", cl.check_only, "validate the configuration, print it, and exit");
  auto* o_backend = app.add_option("--backend", backend, "auto | io_uring | epoll | dpdk");
  auto* o_cores = app.add_option("--cores", cores, "pin one worker per core, e.g. 1 or 0,1");
  auto* o_workers = app.add_option("--workers", workers, "N unpinned workers");
  auto* o_listen = app.add_option("--listen", listen, "default IPv4 address for services");
  auto* o_busy = app.add_flag("--busy-poll,!--no-busy-poll", busy, "spin instead of blocking");
  auto* o_level = app.add_option("--log-level", log_level, log::levels_text("|"));
  app.footer("Arguments after -- are EAL arguments for backend dpdk (appended to dpdk.eal).");
  // Everything after the first "--" is EAL's; before it there are no positionals, so a stray
  // word is a usage error rather than an EAL argument.
  std::vector<std::string> args, eal;
  int end = 1;
  while (end < argc && std::string_view(argv[end]) != "--") ++end;
  for (int i = end + 1; i < argc; ++i) eal.emplace_back(argv[i]);
  for (int i = end - 1; i > 0; --i) args.emplace_back(argv[i]);
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out, err;
    const int code = app.exit(e, out, err);
    if (code == 0) {
      cl.exit_code = 0;
      cl.output = out.str();
    } else {
      cl.exit_code = 2;
      cl.output = std::string("corewire: usage error: ") + e.what() + " (see --help)\n";
    }
    return cl;
  }
  if (o_config->count()) cl.config_path = config;
  if (o_backend->count()) cl.overrides.backend = backend;
  if (o_cores->count()) cl.overrides.cores = cores;
  if (o_workers->count()) cl.overrides.workers = workers;
  if (o_listen->count()) cl.overrides.listen = listen;
  if (o_busy->count()) cl.overrides.busy_poll = busy;
  if (o_level->count()) cl.overrides.log_level = log_level;
  cl.overrides.eal_extra = eal;
  return cl;
}

Result<ServerConfig> load(const CommandLine& cl) {
  ServerConfig cfg;
  if (cl.config_path) {
    auto r = load_config_file(*cl.config_path);
    if (!r) return r.error();
    cfg = std::move(r.value());
  } else {
    cfg = default_config();
  }
  if (auto r = apply_overrides(cfg, cl.overrides); !r) return r.error();
  if (auto r = finalize(cfg); !r) return r.error();
  return cfg;
}

std::vector<std::string> describe(const ServerConfig& cfg) {
  std::vector<std::string> out;
  std::string w = std::to_string(cfg.io.workers) + " worker(s)";
  if (cfg.io.cores.empty()) {
    w += " unpinned";
  } else {
    w += " on core(s) ";
    for (size_t i = 0; i < cfg.io.cores.size(); ++i)
      w += (i ? "," : "") + std::to_string(cfg.io.cores[i]);
  }
  out.push_back("config " + cfg.source + ": backend " + cfg.backend + ", " + w + ", " +
                (cfg.io.busy_poll ? "busy-poll" : "interrupt mode") + ", listen " +
                ipv4_text(cfg.listen_be));
  out.push_back("limits: max_conns " + std::to_string(cfg.io.max_conns) +
                "/worker, conn_out_limit " + std::to_string(cfg.io.conn_out_limit) +
                " B, idle_timeout " + ms_text(cfg.io.idle_timeout_ms) + ", log level " +
                cfg.log_level);
  if (cfg.backend == "dpdk") {
    std::string d = "dpdk: port " + cfg.dpdk.port + ", addresses";
    for (const auto& a : cfg.dpdk.addresses) d += " " + a;
    if (cfg.dpdk.gateway_be) d += ", gateway " + ipv4_text(*cfg.dpdk.gateway_be);
    d += ", eal [";
    for (size_t i = 0; i < cfg.dpdk.eal.size(); ++i) d += (i ? " " : "") + cfg.dpdk.eal[i];
    out.push_back(d + "]");
  }
  for (const auto& s : cfg.services) {
    std::string line = "service " + s.name + ":";
    if (s.udp) line += " udp " + dp::to_string(cfg.endpoint(*s.udp));
    if (s.tcp) line += " tcp " + dp::to_string(cfg.endpoint(*s.tcp));
    if (!s.own_keys.empty()) line += " " + s.own_keys;  // a change needs a restart
    if (!s.enabled) line += " (disabled)";
    out.push_back(line);
  }
  return out;
}

}  // namespace cw::server
