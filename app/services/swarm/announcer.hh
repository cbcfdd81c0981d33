// The swarm's tracker announcer: one thread per owning worker that does the HTTP announces
// (BEP 3, compact peers BEP 23, announce-list tiers BEP 12) so the worker never waits on a
// tracker, resolves a name or allocates for one.
//
// The same hand-off as the disk helper (disk.hh): the worker pushes a Job into one SPSC
// ring and kicks the thread once per loop iteration; the thread tries the torrent's
// trackers tier by tier (the first that answers moves to the front of its tier), pushes one
// Done per Job with the peers it got into the other ring and wakes the worker's poll. The
// worker keeps at most one Job per torrent outstanding (plus the `stopped` ones it pushes
// when it stops), so neither ring can overflow. On stop the thread sends the queued
// `stopped` announces within kStopBudgetMs, then exits.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "app/runtime/spsc.hh"
#include "app/services/swarm/doorbell.hh"
#include "app/services/swarm/tracker.hh"

namespace cw::swarm {

struct AnnounceJob {
  uint32_t torrent = 0;  // index into the Announcer's targets
  tracker::Event event = tracker::Event::none;
  uint64_t uploaded = 0, downloaded = 0, left = 0;  // bytes
};

struct AnnounceDone {
  // ok: a tracker answered with peers; failure: it answered with a failure reason; error:
  // none answered usably (connection, HTTP status, reply too large or malformed).
  enum Status : uint8_t { ok, failure, error };
  uint32_t torrent = 0;
  tracker::Event event = tracker::Event::none;  // the job's
  Status status = error;
  uint64_t left = 0;            // the job's
  uint32_t interval_s = 0;      // ok: the tracker's interval
  uint32_t min_interval_s = 0;  // its min interval, 0 if none
  uint32_t npeers = 0;
  std::array<tracker::PeerAddr, tracker::kMaxPeers> peers{};
};

class Announcer {
 public:
  using Waker = Doorbell::Waker;
  static constexpr int kConnectTimeoutS = 3, kReadTimeoutS = 5;
  static constexpr uint32_t kStopBudgetMs = 3000;

  struct Target {
    std::vector<std::vector<std::string>> tiers;  // http(s) URLs (split_url accepts them)
    std::array<uint8_t, 20> info_hash{};
  };
  // Setup: targets are the torrents, by index; the thread starts here.
  Announcer(std::vector<Target> targets, const std::array<uint8_t, 20>& peer_id, uint16_t port,
            uint32_t numwant, uint32_t key);
  ~Announcer();
  Announcer(const Announcer&) = delete;
  Announcer& operator=(const Announcer&) = delete;

  // Worker side. Set the waker before the first submit.
  void set_waker(Waker w, void* arg) { bell_.set_waker(w, arg); }
  bool submit(const AnnounceJob& j);  // false when the ring is full (the caller's bug)
  void kick() { bell_.ring(); }       // wakes the thread if anything was submitted
  bool poll(AnnounceDone& d);

 private:
  void run();
  void announce(const AnnounceJob& j, AnnounceDone& d);
  // One request to url; fills d (status and, if ok, peers). False if the tracker did not
  // answer usably (the next one is tried).
  bool request(const std::string& url, const AnnounceJob& j, AnnounceDone& d);

  std::vector<Target> targets_;  // the thread's after construction (tiers get reordered)
  const std::array<uint8_t, 20> peer_id_;
  const uint16_t port_;
  const uint32_t numwant_, key_;
  rt::Spsc<AnnounceJob> jobs_;
  rt::Spsc<AnnounceDone> done_;
  std::vector<bencode::Token> toks_;  // the thread's
  Doorbell bell_;
  std::thread thread_;
};

}  // namespace cw::swarm
