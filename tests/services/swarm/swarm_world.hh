// Shared by the swarm service test and its fuzz target: one swarm service in rt::Worker over
// the fake backend (socket 0 its TCP server, socket 1 its TCP client socket), with a
// single-file torrent written under a directory: the data (deterministic bytes, the last
// piece short) and the .torrent. The seed variant's data_dir holds the data; the leech's is
// empty. Setup-side test code: it allocates and does file I/O.
#pragma once

#include <arpa/inet.h>
#include <sys/stat.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "app/runtime/worker.hh"
#include "app/services/swarm/metainfo.hh"
#include "app/services/swarm/protocol.hh"
#include "app/services/swarm/service.hh"
#include "dataplane/fake/fake_io.hh"

namespace cw::testing {

struct SwarmFiles {
  static constexpr uint32_t kPiece = 32768;
  static constexpr uint32_t kSize = 3 * kPiece + 5000;  // 4 pieces, the last short
  std::string dir, torrent, seed_dir, leech_dir;
  std::vector<uint8_t> data;
  std::array<uint8_t, 20> info_hash{};

  // Writes everything under dir (created; an existing one is reused as is).
  explicit SwarmFiles(std::string d) : dir(std::move(d)) {
    seed_dir = dir + "/seed";
    leech_dir = dir + "/leech";
    torrent = dir + "/one.torrent";
    ::mkdir(dir.c_str(), 0755);
    ::mkdir(seed_dir.c_str(), 0755);
    ::mkdir(leech_dir.c_str(), 0755);
    data.resize(kSize);
    uint32_t x = 12345;
    for (uint8_t& b : data) {
      x = x * 1103515245u + 12345u;
      b = uint8_t(x >> 16);
    }
    write(seed_dir + "/one.bin", data);
    std::vector<uint8_t> hashes((kSize / kPiece + 1) * swarm::meta::kHashSize);
    swarm::meta::PieceHasher h(kPiece, hashes);
    h.feed(data);
    h.finish();
    const swarm::meta::FileSpec files[] = {{"", kSize}};
    const swarm::meta::CreateParams cp{
        .name = "one.bin", .piece_length = kPiece, .files = files, .pieces = h.hashes()};
    std::vector<uint8_t> out(4096);
    size_t n = 0;
    if (swarm::meta::create(cp, {}, out, n) != swarm::meta::Error::ok) std::abort();
    out.resize(n);
    write(torrent, out);
    std::vector<swarm::bencode::Token> toks(1024);
    std::vector<swarm::meta::FileEntry> fe(4);
    swarm::meta::Metainfo m;
    if (swarm::meta::parse(out, toks, fe, {}, m) != swarm::meta::Error::ok) std::abort();
    info_hash = m.info_hash;
  }
  static void write(const std::string& p, std::span<const uint8_t> b) {
    FILE* f = std::fopen(p.c_str(), "wb");
    if (!f) std::abort();
    std::fwrite(b.data(), 1, b.size(), f);
    std::fclose(f);
  }
  static std::vector<uint8_t> read(const std::string& p) {
    std::vector<uint8_t> b;
    FILE* f = std::fopen(p.c_str(), "rb");
    if (!f) return b;
    uint8_t buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) b.insert(b.end(), buf, buf + n);
    std::fclose(f);
    return b;
  }
  uint32_t pieces() const { return (kSize + kPiece - 1) / kPiece; }
};

class SwarmWorld {
 public:
  using W = rt::Worker<dp::FakeWorker, std::variant<svc::Swarm>>;
  static constexpr dp::SocketId kServer = 0, kClient = 1;

  SwarmWorld(const SwarmFiles& f, bool seed, svc::Swarm::Options o = {}) {
    o.torrents = {f.torrent};
    o.data_dir = seed ? f.seed_dir : f.leech_dir;
    const rt::SocketRef refs[2] = {{kServer, dp::Transport::tcp, true, true},
                                   {kClient, dp::Transport::tcp, false, true}};
    const dp::Endpoint bound[2] = {{htonl(0x7f000001), htons(6881)}, {}};
    rt::ServiceCtx c{0, 1, 64, 0, refs, {}, bound, {}};
    std::vector<std::variant<svc::Swarm>> v;
    v.emplace_back(std::in_place_type<svc::Swarm>, c, o);
    w_ = std::make_unique<W>(io_, std::move(v), std::vector<uint16_t>{0, 0}, loop_, 64, stats_,
                             std::span(&svc_, 1), mail_);
  }
  ~SwarmWorld() { w_->stop_services(); }

  dp::FakeWorker& io() { return io_; }
  svc::Swarm& swarm() { return std::get<svc::Swarm>(w_->service(0)); }
  const W& worker() const { return *w_; }
  uint64_t counter(uint32_t i) const { return w_->counters().values(0)[i].get(); }

  // Runs the loop until nothing is delivered and the disk helper has nothing in flight
  // (bounded by wall time: the helper runs on its own thread). False on the bound.
  bool run(std::chrono::milliseconds bound = std::chrono::milliseconds(3000)) {
    const auto end = std::chrono::steady_clock::now() + bound;
    int quiet = 0;
    while (std::chrono::steady_clock::now() < end) {
      const uint64_t before = stats_.items.get();
      w_->run_once();
      const bool idle = stats_.items.get() == before && swarm().disk_idle();
      quiet = idle ? quiet + 1 : 0;
      if (quiet >= 3) return true;
      if (!swarm().disk_idle()) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return false;
  }
  // One loop iteration.
  void step() { w_->run_once(); }
  // Runs the loop for a while (timers).
  void run_for(std::chrono::milliseconds d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) {
      w_->run_once();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  // A peer's handshake for info_hash, BEP 6 when fast.
  static std::vector<uint8_t> handshake(const std::array<uint8_t, 20>& info_hash, bool fast) {
    swarm::proto::Handshake h;
    h.set(false, fast, false);
    h.info_hash = info_hash;
    for (uint8_t i = 0; i < 20; ++i) h.peer_id[i] = uint8_t('a' + i);
    std::vector<uint8_t> out(swarm::proto::kHandshakeSize);
    swarm::proto::write_handshake(
        std::span<uint8_t, swarm::proto::kHandshakeSize>(out.data(), out.size()), h);
    return out;
  }

 private:
  dp::IoConfig iocfg_{};
  dp::FakeWorker io_{0, iocfg_, 2};
  rt::WorkerStats stats_;
  rt::ServiceStats svc_;
  rt::Mailboxes mail_{1, 4};
  rt::LoopConfig loop_{.burst = 16, .busy_poll = true, .max_timers = 256};
  std::unique_ptr<W> w_;
};

// Splits a stream of peer wire messages (after any handshake) into (id, payload) pairs;
// keep-alives are id 255. Stops at a partial message.
struct WireMsg {
  uint8_t id;
  std::vector<uint8_t> payload;
};
inline std::vector<WireMsg> split_messages(std::span<const uint8_t> b) {
  std::vector<WireMsg> out;
  size_t off = 0;
  while (b.size() - off >= 4) {
    const uint32_t n = uint32_t(b[off]) << 24 | uint32_t(b[off + 1]) << 16 |
                       uint32_t(b[off + 2]) << 8 | b[off + 3];
    if (b.size() - off - 4 < n) break;
    if (n == 0)
      out.push_back({255, {}});
    else
      out.push_back({b[off + 4], std::vector<uint8_t>(b.begin() + long(off) + 5,
                                                      b.begin() + long(off) + 4 + n)});
    off += 4 + n;
  }
  return out;
}

}  // namespace cw::testing
