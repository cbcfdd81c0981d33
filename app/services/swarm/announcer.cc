// The tracker announcer thread (announcer.hh). Everything here runs on that thread but the
// constructor and the worker-side submit/kick/poll.
#include "app/services/swarm/announcer.hh"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

namespace cw::swarm {

Announcer::Announcer(std::vector<Target> targets, const std::array<uint8_t, 20>& peer_id,
                     uint16_t port, uint32_t numwant, uint32_t key)
    : targets_(std::move(targets)),
      peer_id_(peer_id),
      port_(port),
      numwant_(numwant),
      key_(key),
      jobs_(targets_.size() * 2),
      done_(targets_.size() * 2),
      toks_(4 * tracker::kMaxPeers + 64),
      thread_([this] { run(); }) {}

Announcer::~Announcer() {
  bell_.stop();
  thread_.join();
}

bool Announcer::submit(const AnnounceJob& j) {
  if (!jobs_.push(j)) return false;
  bell_.queued();
  return true;
}

bool Announcer::poll(AnnounceDone& d) {
  return done_.pop(d);
}

void Announcer::run() {
  using Clock = std::chrono::steady_clock;
  Clock::time_point stop_by{};
  bool stopping = false;
  for (;;) {
    const uint32_t seen = bell_.seen();
    if (!stopping && bell_.stopping()) {
      stopping = true;
      stop_by = Clock::now() + std::chrono::milliseconds(kStopBudgetMs);
    }
    bool any = false;
    AnnounceJob j;
    while (jobs_.pop(j)) {
      // Stopping: only the `stopped` announces go out, within the budget.
      if (stopping && (j.event != tracker::Event::stopped || Clock::now() >= stop_by)) continue;
      AnnounceDone d;
      announce(j, d);
      if (!stopping && done_.push(d)) any = true;  // cannot fail: one Job per torrent
      if (!stopping && bell_.stopping()) break;
    }
    if (any) bell_.wake_worker();
    if (stopping) return;
    if (bell_.stopping()) continue;  // drain the `stopped` jobs
    if (!any) bell_.wait(seen);
  }
}

void Announcer::announce(const AnnounceJob& j, AnnounceDone& d) {
  d.torrent = j.torrent;
  d.event = j.event;
  d.left = j.left;
  d.status = AnnounceDone::error;
  if (j.torrent >= targets_.size()) return;
  // BEP 12: tiers in order, trackers of a tier in order; the one that answers moves to the
  // front of its tier, so the next announce tries it first.
  for (auto& tier : targets_[j.torrent].tiers) {
    for (size_t i = 0; i < tier.size(); ++i) {
      if (!request(tier[i], j, d)) continue;
      std::rotate(tier.begin(), tier.begin() + ptrdiff_t(i), tier.begin() + ptrdiff_t(i) + 1);
      return;
    }
  }
}

bool Announcer::request(const std::string& url, const AnnounceJob& j, AnnounceDone& d) {
  tracker::HttpUrl u;
  if (!tracker::split_url(url, u)) return false;
  tracker::Announce a;
  a.info_hash = targets_[j.torrent].info_hash;
  a.peer_id = peer_id_;
  a.port = port_;
  a.uploaded = j.uploaded;
  a.downloaded = j.downloaded;
  a.left = j.left;
  a.event = j.event;
  a.numwant = numwant_;
  a.key = key_;
  std::string target(u.target.size() + 512, '\0');
  const size_t n = tracker::write_query(u.target, a, {target.data(), target.size()});
  if (n == 0) return false;
  target.resize(n);

  httplib::Client cli{std::string(u.origin)};
  cli.set_connection_timeout(kConnectTimeoutS);
  cli.set_read_timeout(kReadTimeoutS);
  cli.set_write_timeout(kReadTimeoutS);
  cli.set_follow_location(true);
  std::string body;
  bool too_large = false;
  const httplib::Headers headers = {{"User-Agent", "corewire"}};
  auto res = cli.Get(target, headers, [&](const char* data, size_t len) {
    if (body.size() + len > tracker::kMaxReply) {
      too_large = true;
      return false;
    }
    body.append(data, len);
    return true;
  });
  const char* name = url.c_str();
  if (!res) {
    std::fprintf(stderr, "corewire: swarm: tracker %s: %s%s\n", name,
                 too_large ? "reply too large" : "no answer: ",
                 too_large ? "" : httplib::to_string(res.error()).c_str());
    return false;
  }
  if (res->status != 200) {
    std::fprintf(stderr, "corewire: swarm: tracker %s: HTTP %d\n", name, res->status);
    return false;
  }
  tracker::Reply r;
  const auto in = std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size());
  const tracker::Error e = tracker::parse_reply(in, toks_, d.peers, r);
  if (e != tracker::Error::ok) {
    std::fprintf(stderr, "corewire: swarm: tracker %s: bad reply (%.*s)\n", name,
                 int(tracker::error_name(e).size()), tracker::error_name(e).data());
    return false;
  }
  d.min_interval_s = r.min_interval > 0 ? uint32_t(r.min_interval) : 0;
  if (r.failed) {
    std::fprintf(stderr, "corewire: swarm: tracker %s: failure reason: %.*s\n", name,
                 int(std::min<size_t>(r.failure.size(), 300)), r.failure.data());
    d.status = AnnounceDone::failure;
    return true;
  }
  if (!r.warning.empty())
    std::fprintf(stderr, "corewire: swarm: tracker %s: warning: %.*s\n", name,
                 int(std::min<size_t>(r.warning.size(), 300)), r.warning.data());
  d.status = AnnounceDone::ok;
  d.interval_s = uint32_t(r.interval);
  d.npeers = uint32_t(r.peers);
  return true;
}

}  // namespace cw::swarm
