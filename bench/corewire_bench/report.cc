#include "bench/corewire_bench/report.hh"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace cw::bench {

namespace {

double us(uint64_t ns) {
  return double(ns) / 1000.0;
}

nlohmann::json latency_json(const Histogram& h) {
  return {{"unit", "us"},
          {"count", h.count()},
          {"min", us(h.min())},
          {"mean", h.mean() / 1000.0},
          {"stddev", h.stddev() / 1000.0},
          {"p50", us(h.percentile(50))},
          {"p90", us(h.percentile(90))},
          {"p99", us(h.percentile(99))},
          {"p99_9", us(h.percentile(99.9))},
          {"p99_99", us(h.percentile(99.99))},
          {"max", us(h.max())}};
}

nlohmann::json run_json(const RunResult& r) {
  const RunInfo& i = r.info;
  nlohmann::json j;
  j["config"] = {{"proto", i.proto},       {"transport", i.transport}, {"target", i.target},
                 {"mode", i.mode},         {"arrival", i.arrival},     {"backend", i.backend},
                 {"msg_size", i.msg_size}, {"flows", i.flows},         {"threads", i.threads},
                 {"window", i.window},     {"rate", i.rate},           {"duration_s", i.duration_s},
                 {"warmup_s", i.warmup_s}, {"count", i.count},         {"conns", i.conns}};
  j["sent"] = r.sent;
  j["received"] = r.received;
  j["lost"] = r.lost;
  j["errors"] = r.errors;
  j["late"] = r.late;
  j["warmup_sent"] = r.warmup_sent;
  j["send_blocked"] = r.send_blocked;
  j["unfinished_workers"] = r.unfinished;
  j["elapsed_s"] = r.elapsed_s;
  j["throughput_msgs"] = r.throughput();
  j["loss_ratio"] = r.loss_ratio();
  j["latency"] = latency_json(*r.hist);
  if (i.transport == "tcp")
    j["conns"] = {{"open", r.conns_open}, {"failed", r.conns_failed}, {"closed", r.conns_closed}};
  if (!i.kv.proto.empty()) {
    const KvCounts& k = r.kv;
    j["kv"] = {{"proto", i.kv.proto},
               {"dist", i.kv.dist},
               {"zipf_theta", i.kv.theta},
               {"get_ratio", i.kv.get_ratio},
               {"keys", i.kv.keys},
               {"key_size", i.kv.key_size},
               {"value_min", i.kv.value_min},
               {"value_max", i.kv.value_max},
               {"multiget", i.kv.multiget},
               {"gets", k.gets},
               {"sets", k.sets},
               {"keys_requested", k.keys},
               {"hits", k.hits},
               {"misses", k.misses},
               {"hit_ratio", k.hits + k.misses ? double(k.hits) / double(k.hits + k.misses) : 0.0},
               {"error_replies", k.error_replies},
               {"bad_replies", k.bad_replies},
               {"udp_reassembly_evicted", k.udp_evicted}};
  }
  if (i.proto == "nats") {
    const NatsCounts& n = r.nats;
    j["nats"] = {{"publishers", i.nats.pubs},
                 {"subscribers", i.nats.subs},
                 {"subject", i.nats.subject},
                 {"queue", i.nats.queue},
                 {"published", r.sent},
                 {"published_per_s", r.published_per_s()},
                 {"expected", n.expected},
                 {"delivered", r.received},
                 {"delivered_per_s", r.throughput()},
                 {"err_lines", n.err_lines},
                 {"bad", n.bad},
                 {"unstamped", n.unstamped},
                 {"out_of_order", n.out_of_order},
                 {"warmup_msgs", n.warmup_msgs}};
  }
  if (r.preloaded)
    j["preload"] = {{"sent", r.preload_sent},
                    {"stored", r.preload_stored},
                    {"lost", r.preload_lost},
                    {"errors", r.preload_errors},
                    {"elapsed_s", r.preload_s}};
  if (!r.backend_counters.empty()) {
    nlohmann::json b = nlohmann::json::object();
    for (const auto& [name, value] : r.backend_counters) b[name] = value;
    j["backend_counters"] = b;
  }
  return j;
}

}  // namespace

void RunResult::add(const ClientResults& w) {
  sent += w.sent.get();
  received += w.received.get();
  lost += w.lost.get();
  errors += w.errors.get();
  late += w.late.get();
  warmup_sent += w.warmup_sent.get();
  send_blocked += w.send_blocked.get();
  conns_open += w.conns_open.get();
  conns_failed += w.conns_failed.get();
  conns_closed += w.conns_closed.get();
  kv.gets += w.kv_gets.get();
  kv.sets += w.kv_sets.get();
  kv.keys += w.kv_keys.get();
  kv.hits += w.kv_hits.get();
  kv.misses += w.kv_misses.get();
  kv.error_replies += w.kv_error_replies.get();
  kv.bad_replies += w.kv_bad_replies.get();
  kv.udp_evicted += w.kv_udp_evicted.get();
  nats.err_lines += w.nats_err_lines.get();
  nats.bad += w.nats_bad.get();
  nats.unstamped += w.nats_unstamped.get();
  nats.out_of_order += w.nats_out_of_order.get();
  nats.warmup_msgs += w.nats_warmup_msgs.get();
  if (w.last_tx_ns > w.measure_start_ns)
    nats.pub_elapsed_s =
        std::max(nats.pub_elapsed_s, double(w.last_tx_ns - w.measure_start_ns) / 1e9);
  if (!w.done()) ++unfinished;
  hist->merge(w.hist);
  if (w.last_rx_ns > w.measure_start_ns)
    elapsed_s = std::max(elapsed_s, double(w.last_rx_ns - w.measure_start_ns) / 1e9);
}

void RunResult::set_preload(const RunResult& p) {
  preloaded = true;
  preload_sent = p.sent;
  preload_stored = p.received;
  preload_lost = p.lost;
  preload_errors = p.errors;
  preload_s = p.elapsed_s;
}

void RunResult::set_nats_expected(uint64_t published, uint64_t fanout) {
  nats.expected = published * fanout;
  lost = nats.expected > received ? nats.expected - received : 0;
}

double RunResult::published_per_s() const {
  return nats.pub_elapsed_s > 0 ? double(sent) / nats.pub_elapsed_s : 0.0;
}

std::string text_report(const RunResult& r) {
  const Histogram& h = *r.hist;
  char b[1024];
  std::string s;
  std::snprintf(
      b, sizeof b,
      "corewire-bench: %s/%s -> %s, %u B, %u thread(s) x %u flow(s), %s loop, backend %s\n",
      r.info.proto.c_str(), r.info.transport.c_str(), r.info.target.c_str(), r.info.msg_size,
      r.info.threads, r.info.flows, r.info.mode.c_str(), r.info.backend.c_str());
  s += b;
  std::snprintf(
      b, sizeof b,
      "sent %llu  received %llu  lost %llu  errors %llu  late %llu  (%.3f s, %.0f msg/s)\n",
      (unsigned long long)r.sent, (unsigned long long)r.received, (unsigned long long)r.lost,
      (unsigned long long)r.errors, (unsigned long long)r.late, r.elapsed_s, r.throughput());
  s += b;
  std::snprintf(b, sizeof b,
                "latency us: min %.3f  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  p99.99 %.3f  "
                "max %.3f  mean %.3f\n",
                us(h.min()), us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)),
                us(h.percentile(99.9)), us(h.percentile(99.99)), us(h.max()), h.mean() / 1000.0);
  s += b;
  if (r.info.transport == "tcp") {
    std::snprintf(b, sizeof b, "connections: %u requested, %llu open, %llu failed, %llu closed\n",
                  r.info.conns ? r.info.conns : r.info.flows * r.info.threads,
                  (unsigned long long)r.conns_open, (unsigned long long)r.conns_failed,
                  (unsigned long long)r.conns_closed);
    s += b;
  }
  if (!r.info.kv.proto.empty()) {
    const KvCounts& k = r.kv;
    std::snprintf(b, sizeof b,
                  "memcached %s: gets %llu (%llu keys: %llu hits, %llu misses)  sets %llu  "
                  "error replies %llu  bad replies %llu\n",
                  r.info.kv.proto.c_str(), (unsigned long long)k.gets, (unsigned long long)k.keys,
                  (unsigned long long)k.hits, (unsigned long long)k.misses,
                  (unsigned long long)k.sets, (unsigned long long)k.error_replies,
                  (unsigned long long)k.bad_replies);
    s += b;
  }
  if (r.info.proto == "nats") {
    const NatsCounts& n = r.nats;
    std::snprintf(b, sizeof b,
                  "nats %u pub(s) -> %u sub(s)%s%s: published %llu (%.0f/s)  delivered %llu "
                  "(%.0f/s) of %llu expected  out of order %llu  -ERR %llu  bad %llu  "
                  "unstamped %llu\n",
                  r.info.nats.pubs, r.info.nats.subs, r.info.nats.queue.empty() ? "" : ", queue ",
                  r.info.nats.queue.c_str(), (unsigned long long)r.sent, r.published_per_s(),
                  (unsigned long long)r.received, r.throughput(), (unsigned long long)n.expected,
                  (unsigned long long)n.out_of_order, (unsigned long long)n.err_lines,
                  (unsigned long long)n.bad, (unsigned long long)n.unstamped);
    s += b;
  }
  if (r.preloaded) {
    std::snprintf(b, sizeof b, "preload: %llu keys, %llu stored, %llu lost, %llu errors (%.3f s)\n",
                  (unsigned long long)r.preload_sent, (unsigned long long)r.preload_stored,
                  (unsigned long long)r.preload_lost, (unsigned long long)r.preload_errors,
                  r.preload_s);
    s += b;
  }
  // The generator's own drops (DPDK stack), so a loss can be told from the server's.
  std::string drops;
  for (const auto& [name, value] : r.backend_counters)
    if (name.rfind("drop.", 0) == 0) drops += "  " + name + " " + std::to_string(value);
  if (!drops.empty()) s += "generator drops:" + drops + "\n";
  if (r.unfinished) {
    std::snprintf(b, sizeof b, "warning: %llu worker(s) did not finish in time\n",
                  (unsigned long long)r.unfinished);
    s += b;
  }
  return s;
}

std::string json_report(const RunResult& r) {
  return run_json(r).dump(2) + "\n";
}

std::string json_sweep(const std::vector<RunResult>& steps) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : steps) a.push_back(run_json(r));
  return nlohmann::json{{"sweep", a}}.dump(2) + "\n";
}

std::string sweep_header() {
  char b[200];
  std::snprintf(b, sizeof b, "%12s %12s %10s %10s %10s %10s %8s\n", "offered/s", "achieved/s",
                "p50 us", "p99 us", "p99.9 us", "max us", "loss %");
  return b;
}

std::string sweep_row(const RunResult& r) {
  char b[200];
  const Histogram& h = *r.hist;
  std::snprintf(b, sizeof b, "%12.0f %12.0f %10.3f %10.3f %10.3f %10.3f %8.3f\n", r.info.rate,
                r.throughput(), us(h.percentile(50)), us(h.percentile(99)), us(h.percentile(99.9)),
                us(h.max()), 100.0 * r.loss_ratio());
  return b;
}

bool write_file(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return false;
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace cw::bench
