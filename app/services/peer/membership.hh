// Cluster membership through etcd (docs/cluster.md#membership-through-etcd): one thread per
// process, off the datapath, that registers this node under a lease, keeps the lease alive,
// reads the member prefix and hands each new view of the members to every worker.
//
// The thread: grant a lease of lease_ttl, put prefix + node_id = {id, addr, fp} under it,
// keep it alive every third of its TTL (a lease etcd lost, e.g. while it was unreachable for
// longer than the TTL, is granted and put again), and range over the prefix every poll.
// A member whose node died leaves when etcd expires its lease; a node that stops revokes its
// own. When etcd does not answer the thread keeps the last view (the workers keep their
// sessions), counts the failures and tries again every poll.
//
// The hand-off is the swarm announcer's (app/services/swarm/announcer.hh): one SPSC ring
// per worker, which the thread pushes a whole View into, then wakes that worker's poll. A
// worker pops the newest view once per loop iteration (a load when there is none). A ring
// that is full (its worker is behind) gets the view on a later round. Views are snapshots,
// so a worker that skips one loses nothing.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "app/runtime/spsc.hh"
#include "app/services/peer/etcd.hh"
#include "dataplane/io.hh"

namespace cw::peer {

struct MembershipConfig {
  std::vector<std::string> etcd;  // "http://host:port", tried in order (the last to answer first)
  std::string node_id;
  std::string prefix = "/corewire/members/";
  dp::Endpoint advertise{};  // where peers dial this node; 0.0.0.0:0 = the peer port's address
  etcd::Fingerprint fingerprint{};  // of this node's certificate
  uint64_t lease_ttl_s = 10;
  uint64_t poll_ms = 1000;  // range over the prefix this often; etcd retried this often
};

// The members as etcd last listed them (this node included), sorted by id.
struct View {
  uint64_t seq = 0;  // 1, 2, ... per change the thread saw
  uint32_t n = 0;
  std::array<etcd::Member, etcd::kMaxMembers> members{};
};

class Membership {
 public:
  using Waker = void (*)(void*);
  static constexpr int kConnectTimeoutMs = 1000, kReadTimeoutMs = 3000;

  // Process-wide counters, written by the thread, read by worker 0 (which exports them).
  enum Stat : uint32_t {
    kMembers,         // gauge: members in the last view
    kJoins,           // members that appeared in a view
    kLeaves,          // members that left one (their lease expired or was revoked)
    kLeaseGrants,     // leases this node was granted (1, plus one per re-registration)
    kLeaseLost,       // times etcd no longer held this node's lease (re-registered)
    kEtcdErrors,      // requests etcd did not answer, or answered with an HTTP error
    kEtcdBadReplies,  // replies that were not what the gateway sends (JSON, fields)
    kBadMembers,      // member entries skipped: key or value malformed, or too many
    kEtcdUp,          // gauge: 1 while the last request was answered
    kStats
  };

  // Setup; the thread starts at the first attach.
  explicit Membership(MembershipConfig cfg);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Worker side, outside the loop's hot path. attach: the first call sizes one ring per
  // worker and starts the thread (self is the peer port as bound, for the default
  // advertise address); w(arg) wakes the worker. detach: the worker stops taking views
  // (its waker is forgotten); the last detach stops the thread, which revokes the lease.
  void attach(unsigned worker, unsigned workers, dp::Endpoint self, Waker w, void* arg);
  void detach(unsigned worker);
  // The newest view since the last call, if any (worker only; attach first).
  bool poll(unsigned worker, View& out);
  uint64_t stat(Stat s) const { return stats_[s].load(std::memory_order_relaxed); }
  const std::string& node_id() const { return cfg_.node_id; }

 private:
  struct Slot {
    std::unique_ptr<rt::Spsc<View>> ring;
    Waker waker = nullptr;
    void* arg = nullptr;
    bool attached = false;
    bool pending = false;  // the thread's: the newest view has not been pushed yet
  };

  void run();
  void stop_thread();
  bool register_self();
  void keep_alive();
  void read_members();
  void publish();
  // POST body to path on the first etcd endpoint that answers; false (counted, logged on a
  // change of state) when none did. Sets *status and *reply.
  bool post(const char* path, const std::string& body, int* status, std::string* reply);
  void set_up(bool up, const std::string& why);
  void add(Stat s, uint64_t n = 1) { stats_[s].fetch_add(n, std::memory_order_relaxed); }

  MembershipConfig cfg_;
  std::string key_, value_;  // this node's registration (set when the thread starts)
  std::array<std::atomic<uint64_t>, kStats> stats_{};

  std::mutex mu_;  // slots_, started_, stop_ (never taken by a worker's loop)
  std::condition_variable cv_;
  std::vector<Slot> slots_;
  unsigned attached_ = 0;
  bool started_ = false, stop_ = false;
  std::thread thread_;

  // The thread's own.
  int64_t lease_ = 0, ttl_s_ = 0;
  bool up_ = true;  // as last logged
  std::unique_ptr<View> view_, next_;
  std::string reply_;
};

}  // namespace cw::peer
