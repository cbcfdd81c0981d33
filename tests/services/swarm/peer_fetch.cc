// A test helper for the libtorrent interop test: a minimal BitTorrent peer built on the wire
// codec, over a blocking loopback socket. It connects to a seed, handshakes (BEP 3, with the
// BEP 6 and BEP 10 bits), sends the BEP 10 handshake and "interested", requests every block
// of piece 0 once unchoked (or allowed fast), and checks the piece against its SHA-1.
//   peer_fetch FILE.torrent PORT    prints what it saw; exit 0 if piece 0 verified
// Sockets, allocation and blocking are fine here: this is the test side, not the service.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "app/services/swarm/metainfo.hh"
#include "app/services/swarm/protocol.hh"

namespace mi = cw::swarm::meta;
namespace wp = cw::swarm::proto;

namespace {

int fd = -1;

bool send_all(const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

// Appends what arrives to buf; false on EOF, error or the 1 s receive timeout.
bool recv_more(std::vector<uint8_t>& buf) {
  uint8_t tmp[65536];
  const ssize_t k = ::recv(fd, tmp, sizeof tmp, 0);
  if (k <= 0) return false;
  buf.insert(buf.end(), tmp, tmp + k);
  return true;
}

int fail(const char* what) {
  std::printf("FAIL %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: peer_fetch FILE.torrent PORT\n");
    return 2;
  }
  std::ifstream f(argv[1], std::ios::binary);
  const std::vector<uint8_t> torrent{std::istreambuf_iterator<char>(f),
                                     std::istreambuf_iterator<char>()};
  std::vector<cw::swarm::bencode::Token> toks(1 << 16);
  std::vector<mi::FileEntry> files(1024);
  mi::Metainfo m;
  if (mi::parse(torrent, toks, files, {}, m) != mi::Error::ok) return fail("parse torrent");

  fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(argv[2])));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return fail("connect");

  wp::Handshake hs;
  hs.set(true, true, false);
  std::memcpy(hs.info_hash.data(), m.info_hash.data(), 20);
  std::memcpy(hs.peer_id.data(), "-CW0001-interoptest1", 20);
  std::array<uint8_t, wp::kHandshakeSize> hbuf;
  wp::write_handshake(hbuf, hs);
  if (!send_all(hbuf.data(), hbuf.size())) return fail("send handshake");

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  const auto late = [&] { return std::chrono::steady_clock::now() > deadline; };
  std::vector<uint8_t> in;
  wp::Handshake peer;
  wp::Result r;
  while ((r = wp::parse_handshake(in, peer)).status == wp::Status::need_more) {
    if (late()) return fail("handshake timeout");
    recv_more(in);
  }
  if (r.status != wp::Status::ok) return fail("peer handshake");
  if (peer.info_hash != hs.info_hash) return fail("peer info-hash");
  std::printf("handshake extended=%d fast=%d\n", peer.extended(), peer.fast());
  in.erase(in.begin(), in.begin() + static_cast<long>(r.n));

  const wp::Limits lim{.fast = peer.fast(), .extended = peer.extended()};
  std::vector<uint8_t> out(64 * 1024);
  size_t n = 0;
  if (peer.extended()) {
    std::array<uint8_t, 256> payload;
    const size_t p = wp::write_ext_handshake(payload, {.reqq = 64, .client = "corewire test"});
    n += wp::write_extended(out, 0, std::span(payload).first(p));
  }
  n += wp::write_simple(std::span(out).subspan(n), wp::kInterested);
  if (!send_all(out.data(), n)) return fail("send interested");

  const uint32_t size0 = m.piece_size(0);
  std::vector<uint8_t> piece(size0);
  std::vector<bool> got((size0 + wp::kMaxBlock - 1) / wp::kMaxBlock);
  size_t blocks = 0;
  bool requested = false;
  bool have0 = false;
  const auto request_all = [&]() {
    size_t k = 0;
    for (uint32_t b = 0; b < got.size(); ++b) {
      const uint32_t len = std::min<uint32_t>(wp::kMaxBlock, size0 - b * wp::kMaxBlock);
      k += wp::write_block_ref(std::span(out).subspan(k), wp::kRequest, 0, b * wp::kMaxBlock, len);
    }
    requested = true;
    return send_all(out.data(), k);
  };
  while (blocks < got.size()) {
    wp::Message msg;
    r = wp::parse_message(in, lim, msg);
    if (r.status == wp::Status::error) {
      std::printf("FAIL message: %s\n", std::string(wp::error_name(r.error)).c_str());
      return 1;
    }
    if (r.status == wp::Status::need_more) {
      if (late()) return fail("timeout");
      recv_more(in);
      continue;
    }
    if (msg.keep_alive) {
      std::printf("msg keep-alive\n");
    } else {
      std::printf("msg %u len %zu\n", msg.id, r.n - wp::kLengthSize);
    }
    if (!msg.keep_alive) switch (msg.id) {
        case wp::kBitfield:
          have0 = !msg.payload.empty() && (msg.payload[0] & 0x80) != 0;
          break;
        case wp::kHaveAll:
          have0 = true;
          break;
        case wp::kHave:
          have0 = have0 || msg.index == 0;
          break;
        case wp::kExtended:
          if (msg.ext_id == 0) {
            wp::ExtHandshake eh;
            std::vector<cw::swarm::bencode::Token> et(512);
            if (wp::parse_ext_handshake(msg.payload, et, eh) != wp::Error::ok) {
              return fail("extension handshake");
            }
            std::printf("ext client=%.*s ut_metadata=%u metadata_size=%lld\n",
                        static_cast<int>(eh.client.size()), eh.client.data(), eh.ut_metadata,
                        static_cast<long long>(eh.metadata_size));
          }
          break;
        case wp::kUnchoke:
          if (!have0) return fail("unchoked but piece 0 not announced");
          if (!requested && !request_all()) return fail("send requests");
          break;
        case wp::kAllowedFast:
          if (msg.index == 0 && have0 && !requested && !request_all()) return fail("send");
          break;
        case wp::kReject:
          return fail("request rejected");
        case wp::kPiece: {
          const uint32_t b = msg.begin / wp::kMaxBlock;
          if (msg.index != 0 || b >= got.size() || msg.begin % wp::kMaxBlock != 0 ||
              msg.begin + msg.payload.size() > size0) {
            return fail("unexpected block");
          }
          std::memcpy(piece.data() + msg.begin, msg.payload.data(), msg.payload.size());
          if (!got[b]) ++blocks;
          got[b] = true;
          break;
        }
        default:
          break;
      }
    in.erase(in.begin(), in.begin() + static_cast<long>(r.n));
  }
  const mi::Hash h = mi::sha1(piece);
  if (!std::equal(h.begin(), h.end(), m.piece_hash(0).begin())) return fail("piece 0 hash");
  std::printf("piece 0 ok (%u bytes, %zu blocks)\n", size0, blocks);
  ::close(fd);
  return 0;
}
