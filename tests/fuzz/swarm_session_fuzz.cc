// libFuzzer target: the swarm service's peer sessions (app/services/swarm/service.hh) over the
// fake backend, past what swarm_wire_fuzz covers (the codec alone): the state each message
// changes (interest, choking, queued requests, piece buffers, disk reads and writes).
// Input: a flags byte (bit 0: the peer speaks BEP 6; bit 1: we are a leech that connected
// to it, else a seed it connected to), then the bytes the peer sends after a valid
// handshake, cut at fuzzer-chosen points as in service_harness.hh (up to 15 cut lengths, a
// count byte). Checks: the worker goes idle; once the peer is gone no peer is counted, no
// tail is held and the disk helper has nothing in flight; a leech never holds a piece that
// is not the torrent's (its file matches the data wherever it has a piece).
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "tests/fuzz/service_harness.hh"
#include "tests/services/swarm/swarm_world.hh"

namespace {

using namespace cw;

testing::SwarmFiles& files() {
  static testing::SwarmFiles f("/tmp/cw-swarm-fuzz-" + std::to_string(::getpid()));
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const bool fast = data[0] & 1, leech = data[0] & 2;
  const auto [bytes, cuts] = fuzz::split_input({data + 1, size - 1});

  testing::SwarmFiles& f = files();
  if (leech) std::remove((f.leech_dir + "/one.bin").c_str());
  svc::Swarm::Options o;
  if (leech) o.peers = {{htonl(0x7f000001), htons(51413)}};
  o.pipeline = 4;
  o.max_active_pieces = 2;
  o.disk_reads = 4;
  o.peer_requests = 8;
  testing::SwarmWorld w(f, !leech, o);
  CW_FUZZ_CHECK(w.run());
  dp::ConnId c;
  if (leech) {
    const auto cs = w.io().take_connects();
    CW_FUZZ_CHECK(cs.size() == 1);
    c = cs[0].first;
    w.io().complete_connect(c);
  } else {
    c = w.io().inject_open(testing::SwarmWorld::kServer, {htonl(0x7f000001), htons(40000)});
  }
  w.io().inject_stream(c, testing::SwarmWorld::handshake(f.info_hash, fast));
  CW_FUZZ_CHECK(w.run());
  fuzz::feed_cut(w.io(), c, bytes, cuts, [&] { CW_FUZZ_CHECK(w.run()); });
  if (w.io().is_open(c)) w.io().inject_peer_close(c);
  CW_FUZZ_CHECK(w.run());
  CW_FUZZ_CHECK(w.counter(svc::Swarm::kPeers) == 0);
  CW_FUZZ_CHECK(w.worker().tails().in_use() == 0);
  CW_FUZZ_CHECK(w.swarm().disk_idle());
  if (leech && w.swarm().have_count(0)) {
    const std::vector<uint8_t> got = testing::SwarmFiles::read(f.leech_dir + "/one.bin");
    for (uint32_t p = 0; p < f.pieces(); ++p) {
      const size_t at = size_t(p) * testing::SwarmFiles::kPiece;
      const size_t n = std::min<size_t>(testing::SwarmFiles::kPiece, f.data.size() - at);
      // A piece written is a verified one: equal to the data (or absent, all zeros/short).
      if (got.size() >= at + n && !std::equal(got.begin() + long(at), got.begin() + long(at + n),
                                              f.data.begin() + long(at))) {
        bool zeros = true;
        for (size_t i = at; i < at + n; ++i) zeros = zeros && got[i] == 0;
        CW_FUZZ_CHECK(zeros);
      }
    }
  }
  return 0;
}
