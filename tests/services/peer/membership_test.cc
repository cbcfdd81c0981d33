// The membership thread (app/services/peer/membership.hh) against a fake etcd: an in-process
// HTTP server on a loopback port that answers the v3 JSON gateway's five calls the way etcd
// 3.4 does (int64s as strings, keys and values base64, a lost lease's keep-alive without a
// TTL). Registration, views handed to the worker rings, a lost lease registered again, a
// malformed reply counted with the view kept, etcd away and back, the revoke on the last
// detach. The real etcd is in tests/integration/test_cluster.py.
#include "app/services/peer/membership.hh"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace cw::peer {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string b64d(const std::string& s) {
  std::string out;
  EXPECT_TRUE(etcd::base64_decode(s, out));
  return out;
}

class FakeEtcd {
 public:
  FakeEtcd() {
    auto json = [](httplib::Response& res, const Json& j) {
      res.set_content(j.dump(), "application/json");
    };
    srv_.Post("/v3/lease/grant", [this, json](const httplib::Request& rq, httplib::Response& rs) {
      std::lock_guard g(mu_);
      ++grants;
      const int64_t id = next_lease_++;
      leases_[id] = std::stoll(Json::parse(rq.body)["TTL"].get<std::string>());
      json(rs, {{"header", {{"revision", "1"}}},
                {"ID", std::to_string(id)},
                {"TTL", std::to_string(leases_[id])}});
    });
    srv_.Post("/v3/kv/put", [this, json](const httplib::Request& rq, httplib::Response& rs) {
      std::lock_guard g(mu_);
      const Json j = Json::parse(rq.body);
      const int64_t lease = std::stoll(j["lease"].get<std::string>());
      if (!leases_.count(lease)) {
        rs.status = 400;
        return json(rs, {{"error", "etcdserver: requested lease not found"}, {"code", 5}});
      }
      kv_[b64d(j["key"])] = {b64d(j["value"]), lease};
      json(rs, {{"header", {{"revision", "2"}}}});
    });
    srv_.Post("/v3/kv/range", [this, json](const httplib::Request&, httplib::Response& rs) {
      std::lock_guard g(mu_);
      ++ranges;
      if (garbage) return rs.set_content("{\"kvs\":", "application/json");
      Json kvs = Json::array();
      for (const auto& [k, v] : kv_)
        kvs.push_back({{"key", etcd::base64_encode(k)},
                       {"value", etcd::base64_encode(v.first)},
                       {"lease", std::to_string(v.second)}});
      Json r{{"header", {{"revision", "3"}}}};
      if (!kvs.empty()) r["kvs"] = kvs;
      json(rs, r);
    });
    srv_.Post("/v3/lease/keepalive",
              [this, json](const httplib::Request& rq, httplib::Response& rs) {
                std::lock_guard g(mu_);
                ++keepalives;
                const std::string id = Json::parse(rq.body)["ID"];
                Json r{{"header", {{"revision", "3"}}}, {"ID", id}};
                if (auto it = leases_.find(std::stoll(id)); it != leases_.end())
                  r["TTL"] = std::to_string(it->second);  // a lease etcd lost: no TTL
                json(rs, {{"result", r}});
              });
    srv_.Post("/v3/kv/lease/revoke",
              [this, json](const httplib::Request& rq, httplib::Response& rs) {
                std::lock_guard g(mu_);
                ++revokes;
                drop_lease(std::stoll(Json::parse(rq.body)["ID"].get<std::string>()));
                json(rs, {{"header", {{"revision", "4"}}}});
              });
    port = srv_.bind_to_any_port("127.0.0.1");  // listening: connects queue until the loop runs
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
    // stop() before the loop runs would be lost (and the join would wait forever).
    for (int i = 0; i < 5000 && !srv_.is_running(); ++i) std::this_thread::sleep_for(1ms);
  }
  ~FakeEtcd() {
    srv_.stop();
    thread_.join();
  }

  void put_raw(const std::string& key, const std::string& value, int64_t lease) {
    std::lock_guard g(mu_);
    kv_[key] = {value, lease};
  }
  // As when etcd expires a lease: it and its keys go.
  void expire_all() {
    std::lock_guard g(mu_);
    while (!leases_.empty()) drop_lease(leases_.begin()->first);
  }
  size_t keys() {
    std::lock_guard g(mu_);
    return kv_.size();
  }

  int port = 0;
  std::atomic<int> grants{0}, ranges{0}, keepalives{0}, revokes{0};
  std::atomic<bool> garbage{false};

 private:
  void drop_lease(int64_t id) {
    leases_.erase(id);
    std::erase_if(kv_, [&](const auto& e) { return e.second.second == id; });
  }

  httplib::Server srv_;
  std::thread thread_;
  std::mutex mu_;
  int64_t next_lease_ = 7587848397530710026;
  std::map<int64_t, int64_t> leases_;                          // id -> TTL
  std::map<std::string, std::pair<std::string, int64_t>> kv_;  // key -> value, lease
};

MembershipConfig config(int port) {
  MembershipConfig c;
  c.etcd = {"http://127.0.0.1:" + std::to_string(port)};
  c.node_id = "node-a";
  c.prefix = "/t/";
  c.lease_ttl_s = 3;
  c.poll_ms = 50;
  for (size_t i = 0; i < c.fingerprint.size(); ++i) c.fingerprint[i] = uint8_t(i);
  return c;
}

constexpr dp::Endpoint kSelf{0x0100007f, 0x1f1d};  // 127.0.0.1:7455

// Polls worker w's ring until pred(view) or 5 s; the last view taken.
template <class P>
View wait_view(Membership& m, unsigned w, P&& pred) {
  View v{};
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    View got;
    if (m.poll(w, got)) {
      v = got;
      if (pred(v)) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  return v;
}

template <class P>
bool eventually(P&& pred) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

TEST(Membership, RegistersAndHandsEveryWorkerTheView) {
  FakeEtcd e;
  const etcd::Fingerprint other{9};
  e.put_raw("/t/node-b", etcd::member_value("node-b", {0x0200007f, 0x0100}, other), 99);
  e.put_raw("/t/node-c", "garbage", 98);
  Membership m(config(e.port));
  std::atomic<int> woken{0};
  auto waker = [](void* p) { static_cast<std::atomic<int>*>(p)->fetch_add(1); };
  m.attach(0, 2, kSelf, waker, &woken);
  m.attach(1, 2, kSelf, waker, &woken);
  for (unsigned w = 0; w < 2; ++w) {
    const View v = wait_view(m, w, [](const View& v) { return v.n == 2; });
    ASSERT_EQ(v.n, 2u) << "worker " << w;
    EXPECT_EQ(v.members[0].name(), "node-a");
    EXPECT_EQ(v.members[0].addr, kSelf);  // advertise defaults to the bound peer port
    EXPECT_EQ(v.members[0].fp[5], 5);
    EXPECT_EQ(v.members[1].name(), "node-b");
    EXPECT_EQ(v.members[1].fp, other);
    EXPECT_EQ(v.members[1].lease, 99);
  }
  EXPECT_GE(woken.load(), 2);
  EXPECT_EQ(m.stat(Membership::kMembers), 2u);
  EXPECT_EQ(m.stat(Membership::kJoins), 2u);
  EXPECT_EQ(m.stat(Membership::kLeaseGrants), 1u);
  EXPECT_EQ(m.stat(Membership::kBadMembers), 1u);  // node-c's value
  EXPECT_EQ(m.stat(Membership::kEtcdUp), 1u);
  // Keep-alives every third of the 3 s TTL.
  EXPECT_TRUE(eventually([&] { return e.keepalives.load() >= 1; }));
  EXPECT_EQ(m.stat(Membership::kLeaseLost), 0u);

  // The last detach stops the thread, which revokes the lease: its key goes.
  m.detach(0);
  EXPECT_EQ(e.revokes.load(), 0);
  m.detach(1);
  EXPECT_EQ(e.revokes.load(), 1);
  EXPECT_EQ(e.keys(), 2u);  // node-b and node-c, not ours
}

TEST(Membership, LostLeaseIsRegisteredAgainAndBadRepliesKeepTheView) {
  FakeEtcd e;
  Membership m(config(e.port));
  m.attach(0, 1, kSelf, nullptr, nullptr);
  View v = wait_view(m, 0, [](const View& v) { return v.n == 1; });
  ASSERT_EQ(v.n, 1u);
  const int64_t first = v.members[0].lease;

  // etcd lost the lease (and our key): the next keep-alive says so; a new lease, a new key,
  // and the view shows this node under the new lease.
  e.expire_all();
  v = wait_view(m, 0, [&](const View& v) { return v.n == 1 && v.members[0].lease != first; });
  ASSERT_EQ(v.n, 1u);
  EXPECT_NE(v.members[0].lease, first);
  EXPECT_EQ(m.stat(Membership::kLeaseLost), 1u);
  EXPECT_EQ(m.stat(Membership::kLeaseGrants), 2u);

  // Replies that are not the gateway's: counted, the last view kept (nothing published).
  e.garbage = true;
  EXPECT_TRUE(eventually([&] { return m.stat(Membership::kEtcdBadReplies) >= 3; }));
  View none;
  EXPECT_FALSE(m.poll(0, none));
  EXPECT_EQ(m.stat(Membership::kMembers), 1u);
  e.garbage = false;
  m.detach(0);
}

TEST(Membership, EtcdAwayAtStartIsCountedAndRetried) {
  int port = 0;
  {
    FakeEtcd probe;  // a port that was free a moment ago
    port = probe.port;
  }
  Membership m(config(port));
  m.attach(0, 1, kSelf, nullptr, nullptr);
  EXPECT_TRUE(eventually([&] { return m.stat(Membership::kEtcdErrors) >= 3; }));
  EXPECT_EQ(m.stat(Membership::kEtcdUp), 0u);
  View v;
  EXPECT_FALSE(m.poll(0, v));
  m.detach(0);  // stops without a lease to revoke, within the connect timeout
}

}  // namespace
}  // namespace cw::peer
