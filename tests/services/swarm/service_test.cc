// The swarm service over the fake backend (tests/services/swarm/swarm_world.hh): a seed's
// handshake, have-all, unchoke and blocks read from disk; BEP 6 rejects; counted closes for a
// wrong info-hash, a request outside the torrent and a silent peer; a leech that connects
// out, asks rarest-first blocks pipelined, discards a corrupted piece and completes with the
// file byte-identical; with a tracker (fake_tracker.hh) instead of configured peers, the
// leech finds its peer through it and reports started/completed/stopped, and a seed's
// failed announce waits for the backoff; a slow reader served within the output budget; a
// prefaulted piece served without the disk helper until it expires; a file truncated under
// the seed. The piece picker on its own.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "app/services/swarm/picker.hh"
#include "tests/services/swarm/fake_tracker.hh"
#include "tests/services/swarm/swarm_world.hh"

namespace cw::testing {
namespace {

namespace bt = swarm::proto;
using S = svc::Swarm;

std::string temp_dir() {
  char t[] = "/tmp/cw-swarm-test-XXXXXX";
  if (!::mkdtemp(t)) std::abort();
  return t;
}

struct Fixture : ::testing::Test {
  Fixture() : files(temp_dir()) {}
  ~Fixture() override {
    std::error_code ec;
    std::filesystem::remove_all(files.dir, ec);
  }
  SwarmFiles files;
};

std::vector<uint8_t> msg(std::initializer_list<uint8_t> body) {
  std::vector<uint8_t> m = {0, 0, 0, uint8_t(body.size())};
  m.insert(m.end(), body);
  return m;
}
std::vector<uint8_t> block_ref(uint8_t id, uint32_t index, uint32_t begin, uint32_t len) {
  std::vector<uint8_t> m(17);
  EXPECT_EQ(bt::write_block_ref(m, bt::MsgId(id), index, begin, len), 17u);
  return m;
}

// A connection to the seed, past its handshake: what it sent after our handshake.
struct SeedPeer {
  SwarmWorld& w;
  dp::ConnId c;
  SeedPeer(SwarmWorld& world, const std::array<uint8_t, 20>& ih, bool fast = true) : w(world) {
    EXPECT_TRUE(w.run());
    c = w.io().inject_open(SwarmWorld::kServer, {htonl(0x7f000001), htons(40000)});
    w.io().inject_stream(c, SwarmWorld::handshake(ih, fast));
    EXPECT_TRUE(w.run());
  }
  std::vector<uint8_t> out() { return w.io().take_stream_out(c); }
  void send(const std::vector<uint8_t>& b) {
    w.io().inject_stream(c, b);
    EXPECT_TRUE(w.run());
  }
  // Interested, and unchoked: what the seed sent so far is dropped.
  void unchoke() {
    send(msg({bt::kInterested}));
    out();
  }
};

// How long a prefaulted piece is served from its mapping without asking the helper again.
constexpr std::chrono::milliseconds kResident{S::kResidentNs / 1'000'000};

TEST_F(Fixture, SeedAnnouncesAllAndServesBlocksFromDisk) {
  SwarmWorld w(files, true);
  EXPECT_EQ(w.swarm().have_count(0), files.pieces());
  SeedPeer p(w, files.info_hash);
  std::vector<uint8_t> o = p.out();
  ASSERT_GE(o.size(), bt::kHandshakeSize + 5);
  bt::Handshake hs;
  ASSERT_EQ(bt::parse_handshake(o, hs).status, bt::Status::ok);
  EXPECT_EQ(hs.info_hash, files.info_hash);
  EXPECT_TRUE(hs.fast());
  auto m = split_messages(std::span(o).subspan(bt::kHandshakeSize));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, bt::kHaveAll);
  EXPECT_EQ(w.counter(S::kPeers), 1u);

  // Choked: a request is rejected (BEP 6).
  p.send(block_ref(bt::kRequest, 0, 0, 16384));
  m = split_messages(p.out());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, bt::kReject);

  p.send(msg({bt::kInterested}));
  m = split_messages(p.out());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, bt::kUnchoke);

  // Two blocks, one of them the short tail of the last piece.
  const uint32_t last = files.pieces() - 1, tail = SwarmFiles::kSize - last * SwarmFiles::kPiece;
  p.send(block_ref(bt::kRequest, 1, 16384, 16384));
  p.send(block_ref(bt::kRequest, last, 0, tail));
  m = split_messages(p.out());
  ASSERT_EQ(m.size(), 2u);
  const size_t offs[2] = {SwarmFiles::kPiece + 16384, size_t(last) * SwarmFiles::kPiece};
  const size_t lens[2] = {16384, tail};
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(m[i].id, bt::kPiece);
    ASSERT_EQ(m[i].payload.size(), 8 + lens[i]);
    EXPECT_TRUE(std::equal(m[i].payload.begin() + 8, m[i].payload.end(),
                           files.data.begin() + long(offs[i])));
  }
  EXPECT_EQ(w.counter(S::kBlocksOut), 2u);
  EXPECT_EQ(w.counter(S::kBytesOut), 16384u + tail);

  // Past the end of the last piece: a protocol error, the connection closed.
  p.send(block_ref(bt::kRequest, last, 16384, 16384));
  EXPECT_FALSE(w.io().is_open(p.c));
  EXPECT_EQ(w.counter(S::kProtocolErrors), 1u);
  EXPECT_TRUE(w.run());
  EXPECT_EQ(w.counter(S::kPeers), 0u);
}

TEST_F(Fixture, WithoutFastRequestsWhileChokedAreDropped) {
  SwarmWorld w(files, true);
  SeedPeer p(w, files.info_hash, false);
  const std::vector<uint8_t> o = p.out();
  ASSERT_GE(o.size(), bt::kHandshakeSize);
  auto m = split_messages(std::span(o).subspan(bt::kHandshakeSize));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, bt::kBitfield);  // no BEP 6: a bitfield of all ones
  EXPECT_EQ(m[0].payload, std::vector<uint8_t>{0xF0});
  p.send(block_ref(bt::kRequest, 0, 0, 16384));
  EXPECT_TRUE(p.out().empty());
  EXPECT_EQ(w.counter(S::kRequestsDropped), 1u);
  EXPECT_TRUE(w.io().is_open(p.c));
}

TEST_F(Fixture, WrongInfoHashAndNotBitTorrentAreCountedCloses) {
  SwarmWorld w(files, true);
  std::array<uint8_t, 20> other = files.info_hash;
  other[0] ^= 1;
  SeedPeer p(w, other);
  EXPECT_FALSE(w.io().is_open(p.c));
  EXPECT_EQ(w.counter(S::kUnknownTorrent), 1u);
  const dp::ConnId c = w.io().inject_open(SwarmWorld::kServer, {htonl(0x7f000001), htons(40001)});
  const std::string get = "GET / HTTP/1.1\r\n";
  w.io().inject_stream(c, {reinterpret_cast<const uint8_t*>(get.data()), get.size()});
  EXPECT_TRUE(w.run());
  EXPECT_FALSE(w.io().is_open(c));
  EXPECT_EQ(w.counter(S::kBadHandshake), 1u);
}

TEST_F(Fixture, OversizedLengthsAreCountedCloses) {
  SwarmWorld w(files, true);
  const std::vector<uint8_t> bad[] = {
      block_ref(bt::kRequest, 0, 0, 32768),  // a block above 16 KiB
      {0x7f, 0xff, 0xff, 0xff, bt::kPiece},  // a piece of 2 GiB
      {0, 0, 0, 3, bt::kBitfield, 0xF0, 0},  // a bitfield of the wrong size
  };
  uint64_t n = 0;
  for (const auto& b : bad) {
    SeedPeer p(w, files.info_hash);
    p.send(b);
    EXPECT_FALSE(w.io().is_open(p.c));
    EXPECT_EQ(w.counter(S::kProtocolErrors), ++n);
  }
}

TEST_F(Fixture, SilentPeerIsClosedByTheIdleTimer) {
  S::Options o;
  o.idle_timeout_ms = 300;
  o.keepalive_ms = 100;
  SwarmWorld w(files, true, o);
  EXPECT_TRUE(w.run());
  const dp::ConnId c = w.io().inject_open(SwarmWorld::kServer, {htonl(0x7f000001), htons(40002)});
  w.run_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(w.io().is_open(c));
  w.run_for(std::chrono::milliseconds(400));
  EXPECT_FALSE(w.io().is_open(c));
  EXPECT_EQ(w.counter(S::kIdleClosed), 1u);
}

TEST_F(Fixture, HandshakenPeerGetsKeepAlives) {
  S::Options o;
  o.idle_timeout_ms = 10000;
  o.keepalive_ms = 100;
  SwarmWorld w(files, true, o);
  SeedPeer p(w, files.info_hash);
  p.out();
  w.run_for(std::chrono::milliseconds(250));
  const auto m = split_messages(p.out());
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m[0].id, 255);  // keep-alive
}

// A peer that asks for far more than the output budget (1 MiB) and reads slowly: the seed
// queues at most the budget (plus the block that crossed it), sends the rest as the peer
// reads, in the order asked, every block byte-identical; nothing is dropped or rejected.
TEST_F(Fixture, SlowReaderGetsEveryBlockWithinTheOutputBudget) {
  SwarmWorld w(files, true);
  SeedPeer p(w, files.info_hash);
  p.unchoke();
  // 200 requests (3.2 MiB) over the torrent's blocks, the short tail included.
  const uint32_t last = files.pieces() - 1, tail = SwarmFiles::kSize - last * SwarmFiles::kPiece;
  struct Asked {
    uint32_t index, begin, len;
  };
  std::vector<Asked> asked;
  std::vector<uint8_t> reqs;
  for (uint32_t k = 0; asked.size() < 200; ++k) {
    const uint32_t piece = k % files.pieces(), half = (k / files.pieces()) % 2;
    const uint32_t len = piece == last ? tail : 16384, begin = piece == last ? 0 : half * 16384;
    asked.push_back({piece, begin, len});
    const auto r = block_ref(bt::kRequest, piece, begin, len);
    reqs.insert(reqs.end(), r.begin(), r.end());
  }
  p.send(reqs);
  std::vector<uint8_t> got;
  for (int i = 0; i < 100; ++i) {
    EXPECT_LE(w.io().queued(p.c), S::kOutBudget + bt::kPieceHeaderSize + 16384);
    const std::vector<uint8_t> o = p.out();
    if (i == 0) {
      EXPECT_GE(o.size(), S::kOutBudget);  // a full budget at once, then as it is read
      EXPECT_LT(w.counter(S::kBlocksOut), asked.size());
    }
    if (o.empty()) break;
    got.insert(got.end(), o.begin(), o.end());
    EXPECT_TRUE(w.run());
  }
  const auto m = split_messages(got);
  ASSERT_EQ(m.size(), asked.size());
  for (size_t i = 0; i < m.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(m[i].id, bt::kPiece);
    ASSERT_EQ(m[i].payload.size(), 8 + asked[i].len);
    const std::vector<uint8_t> head(m[i].payload.begin(), m[i].payload.begin() + 8);
    std::vector<uint8_t> want(8);
    for (int b = 0; b < 4; ++b) {
      want[b] = uint8_t(asked[i].index >> (24 - 8 * b));
      want[4 + b] = uint8_t(asked[i].begin >> (24 - 8 * b));
    }
    EXPECT_EQ(head, want);
    const size_t at = size_t(asked[i].index) * SwarmFiles::kPiece + asked[i].begin;
    EXPECT_TRUE(
        std::equal(m[i].payload.begin() + 8, m[i].payload.end(), files.data.begin() + long(at)));
  }
  EXPECT_EQ(w.counter(S::kBlocksOut), asked.size());
  EXPECT_EQ(w.counter(S::kRejectsOut), 0u);
  EXPECT_EQ(w.counter(S::kRequestsDropped), 0u);
}

// A piece's first request waits for the disk helper's prefault; the next ones within
// kResidentNs are copied from the mapping in the loop iteration that receives them (no
// helper round trip); past kResidentNs the piece is prefaulted again.
TEST_F(Fixture, PrefaultedPieceIsServedWithoutTheHelperUntilItExpires) {
  SwarmWorld w(files, true);
  SeedPeer p(w, files.info_hash);
  p.unchoke();
  const auto request = [&](uint32_t begin) {
    w.io().inject_stream(p.c, block_ref(bt::kRequest, 1, begin, 16384));
    w.step();
    return split_messages(p.out());
  };
  EXPECT_TRUE(request(0).empty());  // cold: the prefault is with the helper
  EXPECT_FALSE(w.swarm().disk_idle());
  EXPECT_TRUE(w.run());
  auto m = split_messages(p.out());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, bt::kPiece);
  m = request(16384);  // warm: served at once
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, bt::kPiece);
  EXPECT_TRUE(std::equal(m[0].payload.begin() + 8, m[0].payload.end(),
                         files.data.begin() + SwarmFiles::kPiece + 16384));
  EXPECT_TRUE(w.swarm().disk_idle());
  w.run_for(kResident + kResident / 10);
  EXPECT_TRUE(request(0).empty());  // expired: prefaulted again
  EXPECT_TRUE(w.run());
  m = split_messages(p.out());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, bt::kPiece);
  EXPECT_EQ(w.counter(S::kBlocksOut), 3u);
}

// The seed's file is truncated by someone else while it runs: a request for a piece the file
// no longer holds is rejected (BEP 6) and counted, not a crash; the peer stays. Once the
// file is whole again the piece is served (after kResidentNs, when it is tried again).
TEST_F(Fixture, PieceTruncatedUnderTheSeedIsRejectedThenServedOnceBack) {
  SwarmWorld w(files, true);
  SeedPeer p(w, files.info_hash);
  p.unchoke();
  const std::string path = files.seed_dir + "/one.bin";
  ASSERT_EQ(::truncate(path.c_str(), SwarmFiles::kPiece), 0);  // piece 0 only
  p.send(block_ref(bt::kRequest, 0, 16384, 16384));
  p.send(block_ref(bt::kRequest, 2, 0, 16384));
  auto m = split_messages(p.out());
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].id, bt::kPiece);
  EXPECT_EQ(m[1].id, bt::kReject);
  EXPECT_EQ(w.counter(S::kDiskErrors), 1u);
  EXPECT_TRUE(w.io().is_open(p.c));
  SwarmFiles::write(path, files.data);
  w.run_for(kResident / 10);
  p.send(block_ref(bt::kRequest, 2, 0, 16384));
  m = split_messages(p.out());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, bt::kReject);  // the failure holds for kResidentNs
  EXPECT_EQ(w.counter(S::kDiskErrors), 2u);
  w.run_for(kResident);
  p.send(block_ref(bt::kRequest, 2, 0, 16384));
  m = split_messages(p.out());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, bt::kPiece);
  EXPECT_TRUE(std::equal(m[0].payload.begin() + 8, m[0].payload.end(),
                         files.data.begin() + 2 * SwarmFiles::kPiece));
  EXPECT_EQ(w.counter(S::kDiskErrors), 2u);
}

// A leech connected to one peer that has everything; it answers every request, corrupting
// piece `corrupt` once when asked. With a tracker, the peer is not configured: the tracker
// gives it (and ourselves, 127.0.0.1:6881, which is skipped).
void leech(SwarmFiles& files, bool corrupt_once, swarm::test::FakeTracker* tracker = nullptr) {
  S::Options o;
  if (tracker) {
    o.tracker_urls = {tracker->url()};
    tracker->reply = std::string("d8:intervali1800e5:peers12:") +
                     std::string("\x7f\x00\x00\x01\x1a\xe1\x7f\x00\x00\x01\xc8\xd5", 12) + "e";
  } else {
    o.peers = {{htonl(0x7f000001), htons(51413)}};
  }
  o.pipeline = 4;
  SwarmWorld w(files, false, o);
  EXPECT_TRUE(w.run());
  EXPECT_EQ(w.swarm().have_count(0), 0u);
  auto cs = w.io().take_connects();
  for (int i = 0; tracker && cs.empty() && i < 300; ++i) {  // the announce is asynchronous
    w.run_for(std::chrono::milliseconds(10));
    cs = w.io().take_connects();
  }
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].second, (dp::Endpoint{htonl(0x7f000001), htons(51413)}));
  const dp::ConnId c = cs[0].first;
  w.io().complete_connect(c);
  EXPECT_TRUE(w.run());
  std::vector<uint8_t> o1 = w.io().take_stream_out(c);
  ASSERT_EQ(o1.size(), bt::kHandshakeSize);  // ours, first
  auto hs = SwarmWorld::handshake(files.info_hash, true);
  hs.insert(hs.end(), {0, 0, 0, 1, bt::kHaveAll, 0, 0, 0, 1, bt::kUnchoke});
  w.io().inject_stream(c, hs);
  EXPECT_TRUE(w.run());
  bool corrupted = !corrupt_once;
  std::vector<uint8_t> pending;
  for (int round = 0; round < 200 && w.swarm().have_count(0) < files.pieces(); ++round) {
    std::vector<uint8_t> out = w.io().take_stream_out(c);
    pending.insert(pending.end(), out.begin(), out.end());
    const auto ms = split_messages(pending);
    size_t used = 0;
    for (const auto& m : ms) used += 4 + (m.id == 255 ? size_t{0} : 1 + m.payload.size());
    pending.erase(pending.begin(), pending.begin() + long(used));
    std::vector<uint8_t> reply;
    for (const auto& m : ms) {
      if (m.id != bt::kRequest) continue;
      EXPECT_EQ(m.payload.size(), 12u);
      const uint32_t index = uint32_t(m.payload[0]) << 24 | uint32_t(m.payload[1]) << 16 |
                             uint32_t(m.payload[2]) << 8 | m.payload[3];
      const uint32_t begin = uint32_t(m.payload[4]) << 24 | uint32_t(m.payload[5]) << 16 |
                             uint32_t(m.payload[6]) << 8 | m.payload[7];
      const uint32_t len = uint32_t(m.payload[8]) << 24 | uint32_t(m.payload[9]) << 16 |
                           uint32_t(m.payload[10]) << 8 | m.payload[11];
      std::vector<uint8_t> blk(
          files.data.begin() + long(size_t(index) * SwarmFiles::kPiece + begin),
          files.data.begin() + long(size_t(index) * SwarmFiles::kPiece + begin + len));
      if (!corrupted && index == 2) {
        blk[0] ^= 0xFF;
        corrupted = true;
      }
      std::vector<uint8_t> pm(13 + blk.size());
      ASSERT_EQ(bt::write_piece(pm, index, begin, blk), pm.size());
      reply.insert(reply.end(), pm.begin(), pm.end());
    }
    if (!reply.empty()) w.io().inject_stream(c, reply);
    EXPECT_TRUE(w.run());
  }
  EXPECT_EQ(w.swarm().have_count(0), files.pieces());
  const std::vector<uint8_t> rest = w.io().take_stream_out(c);
  pending.insert(pending.end(), rest.begin(), rest.end());
  EXPECT_EQ(w.counter(S::kPiecesDone), files.pieces());
  EXPECT_EQ(w.counter(S::kBadPieces), corrupt_once ? 1u : 0u);
  EXPECT_EQ(w.counter(S::kTorrentsComplete), 1u);
  EXPECT_EQ(w.counter(S::kPeersBanned), 0u);
  EXPECT_EQ(SwarmFiles::read(files.leech_dir + "/one.bin"), files.data);
  // Having all, we told the peer we are no longer interested.
  bool not_interested = false;
  for (const auto& m : split_messages(pending))
    if (m.id == bt::kNotInterested) not_interested = true;
  EXPECT_TRUE(not_interested);
  if (!tracker) return;
  // `started` with everything left, then `completed` as soon as the last piece was written.
  for (int i = 0; tracker->count() < 2 && i < 300; ++i) w.run_for(std::chrono::milliseconds(10));
  ASSERT_EQ(tracker->count(), 2u);
  const std::string total = std::to_string(files.data.size());
  EXPECT_EQ(tracker->param(0, "event"), "started");
  EXPECT_EQ(tracker->param(0, "left"), total);
  EXPECT_EQ(tracker->param(0, "downloaded"), "0");
  EXPECT_EQ(tracker->param(0, "port"), "6881");
  EXPECT_EQ(tracker->param(1, "event"), "completed");
  EXPECT_EQ(tracker->param(1, "left"), "0");
  EXPECT_EQ(tracker->param(1, "downloaded"), total);
  EXPECT_EQ(tracker->param(1, "uploaded"), "0");
  w.run();
  EXPECT_EQ(w.counter(S::kTrackerAnnounces), 2u);
  EXPECT_EQ(w.counter(S::kTrackerReplies), 2u);
  EXPECT_EQ(w.counter(S::kTrackerPeers), 4u);
  EXPECT_EQ(w.counter(S::kTrackerFailures) + w.counter(S::kTrackerErrors), 0u);
  EXPECT_EQ(w.counter(S::kConnects), 1u);  // not ourselves, and nothing once complete
}

// A seed announces `started` with nothing left; a failure reason is counted and the next
// announce waits for the backoff (one announce in 300 ms, not a loop).
TEST_F(Fixture, SeedAnnouncesAndAFailureWaitsForTheBackoff) {
  swarm::test::FakeTracker tracker;
  tracker.reply = "d14:failure reason8:go away!e";
  S::Options o;
  o.tracker_urls = {tracker.url()};
  SwarmWorld w(files, true, o);
  for (int i = 0; tracker.count() < 1 && i < 300; ++i) w.run_for(std::chrono::milliseconds(10));
  w.run_for(std::chrono::milliseconds(300));
  EXPECT_EQ(tracker.count(), 1u);
  EXPECT_EQ(tracker.param(0, "event"), "started");
  EXPECT_EQ(tracker.param(0, "left"), "0");
  EXPECT_EQ(w.counter(S::kTrackerAnnounces), 1u);
  EXPECT_EQ(w.counter(S::kTrackerFailures), 1u);
  EXPECT_EQ(w.counter(S::kTrackerReplies), 0u);
  EXPECT_EQ(w.counter(S::kConnects), 0u);
}

TEST_F(Fixture, LeechFetchesEveryPieceVerified) {
  leech(files, false);
}
TEST_F(Fixture, LeechFindsItsPeerThroughATrackerAndReportsCompletion) {
  swarm::test::FakeTracker tracker;
  leech(files, false, &tracker);
  // Stopping the service sent `stopped` (the world is gone when leech returns).
  ASSERT_EQ(tracker.count(), 3u);
  EXPECT_EQ(tracker.param(2, "event"), "stopped");
}
TEST_F(Fixture, LeechDiscardsACorruptedPieceAndFetchesItAgain) {
  leech(files, true);
}

TEST(Picker, RandomFirstThenRarest) {
  const std::vector<uint8_t> peer = {0xF0}, none = {0};  // the peer has pieces 0..3
  std::vector<uint8_t> busy(4, 0);
  const std::vector<uint16_t> avail = {3, 1, 2, 5};
  swarm::PickIn in{.peer = peer, .have = none, .busy = busy, .avail = avail, .pieces = 4};
  EXPECT_EQ(swarm::pick_piece(in), 1u);  // the rarest, from any start
  in.random = 3;
  EXPECT_EQ(swarm::pick_piece(in), 1u);
  in.random_first = true;
  EXPECT_EQ(swarm::pick_piece(in), 3u);  // the first eligible from the random start
  in.random_first = false;
  busy[1] = 1;
  EXPECT_EQ(swarm::pick_piece(in), 2u);
  const std::vector<uint8_t> have = {0xE0};  // we have 0..2
  in.have = have;
  EXPECT_EQ(swarm::pick_piece(in), 3u);
  const std::vector<uint8_t> all = {0xF0};
  in.have = all;
  EXPECT_EQ(swarm::pick_piece(in), swarm::kNoPiece);
  in.pieces = 9;  // spans too short for 9 pieces
  EXPECT_EQ(swarm::pick_piece(in), swarm::kNoPiece);
}

}  // namespace
}  // namespace cw::testing
