// The membership thread (membership.hh). Everything here runs on that thread but the
// constructor, the destructor and the worker-side attach/detach/poll.
#include "app/services/peer/membership.hh"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

namespace cw::peer {

Membership::Membership(MembershipConfig cfg)
    : cfg_(std::move(cfg)), view_(std::make_unique<View>()), next_(std::make_unique<View>()) {}

Membership::~Membership() {
  stop_thread();
}

void Membership::attach(unsigned worker, unsigned workers, dp::Endpoint self, Waker w, void* arg) {
  std::lock_guard g(mu_);
  if (slots_.empty()) {
    slots_.resize(workers);
    for (Slot& s : slots_) s.ring = std::make_unique<rt::Spsc<View>>(4);
  }
  if (worker >= slots_.size() || slots_[worker].attached) return;
  slots_[worker].waker = w;
  slots_[worker].arg = arg;
  slots_[worker].attached = true;
  ++attached_;
  if (started_) return;
  started_ = true;
  dp::Endpoint adv = cfg_.advertise;
  if (adv.addr_be == 0) adv.addr_be = self.addr_be;
  if (adv.port_be == 0) adv.port_be = self.port_be;
  key_ = cfg_.prefix + cfg_.node_id;
  value_ = etcd::member_value(cfg_.node_id, adv, cfg_.fingerprint);
  thread_ = std::thread([this] { run(); });
}

void Membership::detach(unsigned worker) {
  {
    std::lock_guard g(mu_);
    if (worker >= slots_.size() || !slots_[worker].attached) return;
    slots_[worker].attached = false;
    slots_[worker].waker = nullptr;
    if (--attached_ > 0) return;
  }
  stop_thread();
}

bool Membership::poll(unsigned worker, View& out) {
  if (worker >= slots_.size()) return false;
  bool got = false;
  while (slots_[worker].ring->pop(out)) got = true;
  return got;
}

void Membership::stop_thread() {
  {
    std::lock_guard g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Membership::run() {
  using Clock = std::chrono::steady_clock;
  const auto every = std::chrono::milliseconds(cfg_.poll_ms);
  Clock::time_point next_alive = Clock::now(), next_read = next_alive;
  bool registered = false;
  std::unique_lock lk(mu_);
  while (!stop_) {
    lk.unlock();
    const auto now = Clock::now();
    if (now >= next_alive) {
      if (registered) {
        keep_alive();
        registered = lease_ != 0;  // a lost lease is registered again at once
      }
      if (!registered) registered = register_self();
      // A third of the TTL leaves two keep-alives' worth of slack before etcd expires it.
      next_alive = now + (registered ? std::chrono::milliseconds(ttl_s_ * 1000 / 3) : every);
    }
    if (now >= next_read) {
      read_members();
      next_read = now + every;
    }
    publish();
    lk.lock();
    cv_.wait_until(lk, std::min(next_alive, next_read), [this] { return stop_; });
  }
  lk.unlock();
  // Leave at once rather than when the lease runs out: the others drop us on their next read.
  int status = 0;
  if (lease_ && post("/v3/kv/lease/revoke", etcd::lease_body(lease_), &status, &reply_) &&
      status == 200)
    std::fprintf(stderr, "corewire: peer: left the cluster (lease revoked)\n");
}

bool Membership::register_self() {
  int status = 0;
  if (lease_ == 0) {
    if (!post("/v3/lease/grant", etcd::grant_body(int64_t(cfg_.lease_ttl_s)), &status, &reply_))
      return false;
    etcd::Grant g;
    const etcd::Error e = etcd::parse_grant(reply_, g);
    if (status != 200 || e != etcd::Error::ok) {
      add(status != 200 ? kEtcdErrors : kEtcdBadReplies);
      std::fprintf(stderr, "corewire: peer: etcd lease grant: HTTP %d, %.*s\n", status,
                   int(etcd::error_name(e).size()), etcd::error_name(e).data());
      return false;
    }
    lease_ = g.id;
    ttl_s_ = g.ttl;
    add(kLeaseGrants);
  }
  if (!post("/v3/kv/put", etcd::put_body(key_, value_, lease_), &status, &reply_)) return false;
  const etcd::Error e = etcd::parse_reply(reply_);
  if (status != 200 || e != etcd::Error::ok) {
    add(status != 200 ? kEtcdErrors : kEtcdBadReplies);
    std::fprintf(stderr, "corewire: peer: etcd put %s: HTTP %d, %.*s\n", key_.c_str(), status,
                 int(etcd::error_name(e).size()), etcd::error_name(e).data());
    // A lease etcd does not know (it lost it): grant a new one next time.
    if (status != 200) lease_ = 0;
    return false;
  }
  std::fprintf(stderr, "corewire: peer: registered %s in etcd: %s (lease %lld, TTL %llds)\n",
               key_.c_str(), value_.c_str(), static_cast<long long>(lease_),
               static_cast<long long>(ttl_s_));
  return true;
}

void Membership::keep_alive() {
  int status = 0;
  if (!post("/v3/lease/keepalive", etcd::lease_body(lease_), &status, &reply_)) return;
  int64_t ttl = 0;
  const etcd::Error e = etcd::parse_keepalive(reply_, ttl);
  const bool refused = status != 200 || e == etcd::Error::etcd;
  if (!refused && e != etcd::Error::ok) {
    add(kEtcdBadReplies);
    return;
  }
  if (!refused && ttl > 0) return;
  // etcd expired the lease (it was unreachable for longer than the TTL, or restarted
  // without it) or refused to renew it: a new one costs a grant; the old one expires alone.
  add(refused ? kEtcdErrors : kLeaseLost);
  std::fprintf(stderr, "corewire: peer: etcd %s lease %lld (HTTP %d): registering again\n",
               refused ? "refused to renew" : "no longer holds", static_cast<long long>(lease_),
               status);
  lease_ = 0;
}

void Membership::read_members() {
  int status = 0;
  if (!post("/v3/kv/range", etcd::range_body(cfg_.prefix), &status, &reply_)) return;
  size_t n = 0, bad = 0;
  const etcd::Error e = etcd::parse_range(reply_, cfg_.prefix, next_->members, &n, &bad);
  if (status != 200 || e != etcd::Error::ok) {
    add(status != 200 ? kEtcdErrors : kEtcdBadReplies);
    return;
  }
  stats_[kBadMembers].store(bad, std::memory_order_relaxed);
  next_->n = uint32_t(n);
  // A member is its id and lease: a node that restarted under a new lease left and joined.
  // Counts (and logs) the members of a that b lacks.
  auto missing = [](const View& a, const View& b, const char* what) {
    uint64_t k = 0;
    for (uint32_t i = 0; i < a.n; ++i) {
      const etcd::Member& m = a.members[i];
      if (std::any_of(b.members.begin(), b.members.begin() + b.n,
                      [&](const etcd::Member& o) { return o.same(m); }))
        continue;
      ++k;
      std::fprintf(stderr, "corewire: peer: member %.*s %s (%s)\n", int(m.id_len), m.id.data(),
                   what, dp::to_string(m.addr).c_str());
    }
    return k;
  };
  const uint64_t joins = missing(*next_, *view_, "joined");
  const uint64_t leaves = missing(*view_, *next_, "left");
  if (joins == 0 && leaves == 0) return;
  add(kJoins, joins);
  add(kLeaves, leaves);
  next_->seq = view_->seq + 1;
  std::swap(view_, next_);
  stats_[kMembers].store(view_->n, std::memory_order_relaxed);
  std::lock_guard g(mu_);
  for (Slot& s : slots_) s.pending = true;
}

void Membership::publish() {
  std::lock_guard g(mu_);
  for (Slot& s : slots_) {
    if (!s.pending || !s.ring->push(*view_)) continue;  // full: the next round pushes it
    s.pending = false;
    if (s.attached && s.waker) s.waker(s.arg);
  }
}

bool Membership::post(const char* path, const std::string& body, int* status, std::string* reply) {
  std::string why;
  for (size_t i = 0; i < cfg_.etcd.size(); ++i) {
    httplib::Client cli(cfg_.etcd[i]);
    cli.set_connection_timeout(std::chrono::milliseconds(kConnectTimeoutMs));
    cli.set_read_timeout(std::chrono::milliseconds(kReadTimeoutMs));
    cli.set_write_timeout(std::chrono::milliseconds(kReadTimeoutMs));
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.headers = {{"Content-Type", "application/json"}};
    req.body = body;
    reply->clear();
    bool too_large = false;
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
      if (reply->size() + n > etcd::kMaxReply) {
        too_large = true;
        return false;
      }
      reply->append(d, n);
      return true;
    };
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    if (!cli.send(req, res, err)) {
      why = cfg_.etcd[i] + ": " + (too_large ? "reply too large" : httplib::to_string(err));
      continue;
    }
    *status = res.status;
    // The endpoint that answered is tried first from now on.
    std::rotate(cfg_.etcd.begin(), cfg_.etcd.begin() + ptrdiff_t(i),
                cfg_.etcd.begin() + ptrdiff_t(i) + 1);
    set_up(true, "");
    return true;
  }
  add(kEtcdErrors);
  set_up(false, why);
  return false;
}

void Membership::set_up(bool up, const std::string& why) {
  stats_[kEtcdUp].store(up, std::memory_order_relaxed);
  if (up == up_) return;
  up_ = up;
  if (up)
    std::fprintf(stderr, "corewire: peer: etcd answers again\n");
  else
    std::fprintf(stderr,
                 "corewire: peer: etcd does not answer (%s); keeping the last view of %u "
                 "member(s), retrying every %llums\n",
                 why.c_str(), view_->n, static_cast<unsigned long long>(cfg_.poll_ms));
}

}  // namespace cw::peer
