// HTTP tracker announce requests and replies (tracker.hh).
#include "app/services/swarm/tracker.hh"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>

namespace cw::swarm::tracker {

using bencode::Doc;
using bencode::kNone;
using bencode::Type;

std::string_view event_name(Event e) {
  static constexpr std::string_view kNames[] = {"", "started", "completed", "stopped"};
  return kNames[size_t(e) < 4 ? size_t(e) : 0];
}

std::string_view error_name(Error e) {
  static constexpr std::string_view kNames[] = {"ok", "bencode", "not_dict", "bad_interval",
                                                "bad_peers"};
  static_assert(std::size(kNames) == size_t(Error::kCount));
  return size_t(e) < std::size(kNames) ? kNames[size_t(e)] : "unknown";
}

namespace {

// Appends into a caller buffer; a write that does not fit sets overflow.
struct Out {
  std::span<char> buf;
  size_t n = 0;
  bool overflow = false;

  void put(std::string_view s) {
    if (overflow || s.size() > buf.size() - n) {
      overflow = true;
      return;
    }
    std::memcpy(buf.data() + n, s.data(), s.size());
    n += s.size();
  }
  // "&name=" and v in decimal.
  void param(std::string_view name, uint64_t v) {
    put("&");
    put(name);
    put("=");
    char d[20];
    const auto r = std::to_chars(d, d + sizeof d, v);
    put({d, size_t(r.ptr - d)});
  }
  // RFC 3986 percent-encoding: unreserved bytes as they are, the rest %XX.
  void escaped(Bytes b) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (uint8_t c : b) {
      const bool plain = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
                         (c >= 'a' && c <= 'z') || c == '-' || c == '.' || c == '_' || c == '~';
      if (plain) {
        put({reinterpret_cast<const char*>(&c), 1});
      } else {
        const char e[3] = {'%', kHex[c >> 4], kHex[c & 15]};
        put({e, 3});
      }
    }
  }
};

// "a.b.c.d" with each part 0..255 and no leading zeros beyond a single "0".
bool parse_ipv4(std::string_view s, uint32_t& addr_be) {
  uint32_t host = 0;
  size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part && (i >= s.size() || s[i++] != '.')) return false;
    const size_t start = i;
    uint32_t v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 3) v = v * 10 + (s[i++] - '0');
    if (i == start || v > 255 || (s[start] == '0' && i - start > 1)) return false;
    host = host << 8 | v;
  }
  if (i != s.size()) return false;
  const uint8_t b[4] = {uint8_t(host >> 24), uint8_t(host >> 16), uint8_t(host >> 8),
                        uint8_t(host)};
  std::memcpy(&addr_be, b, 4);
  return true;
}

}  // namespace

size_t write_query(std::string_view url, const Announce& a, std::span<char> out) {
  if (a.info_hash.size() != 20 || a.peer_id.size() != 20) return 0;
  Out o{out};
  o.put(url);
  o.put(url.find('?') == std::string_view::npos ? "?info_hash=" : "&info_hash=");
  o.escaped(a.info_hash);
  o.put("&peer_id=");
  o.escaped(a.peer_id);
  o.param("port", a.port);
  o.param("uploaded", a.uploaded);
  o.param("downloaded", a.downloaded);
  o.param("left", a.left);
  o.put("&compact=1&no_peer_id=1");
  o.param("numwant", a.numwant);
  o.param("key", a.key);
  if (a.event != Event::none) {
    o.put("&event=");
    o.put(event_name(a.event));
  }
  return o.overflow ? 0 : o.n;
}

bool split_url(std::string_view url, HttpUrl& out) {
  size_t skip = 0;
  if (url.starts_with("http://"))
    skip = 7;
  else if (url.starts_with("https://"))
    skip = 8;
  else
    return false;
  const size_t slash = url.find_first_of("/?", skip);
  const size_t host_end = slash == std::string_view::npos ? url.size() : slash;
  if (host_end == skip) return false;
  for (size_t i = skip; i < host_end; ++i)
    if (url[i] == '@' || url[i] <= ' ' || url[i] == 0x7f) return false;  // no userinfo
  out.origin = url.substr(0, host_end);
  out.target = host_end == url.size() ? std::string_view("/") : url.substr(host_end);
  return out.target[0] == '/';
}

Error parse_reply(Bytes in, std::span<bencode::Token> toks, std::span<PeerAddr> peers, Reply& r) {
  r = Reply{};
  Doc doc;
  const bencode::Limits lim{.max_depth = 8, .max_string = kMaxReply, .strict = false};
  if (bencode::decode(in, toks, lim, doc) != bencode::Error::ok) return Error::bencode;
  if (!doc.is(0, Type::dict)) return Error::not_dict;
  if (const uint32_t f = doc.find(0, "failure reason"); doc.is(f, Type::string)) {
    r.failed = true;
    r.failure = doc.str(f);
    return Error::ok;
  }
  if (const uint32_t w = doc.find(0, "warning message"); doc.is(w, Type::string))
    r.warning = doc.str(w);
  const uint32_t iv = doc.find(0, "interval");
  if (!doc.is(iv, Type::integer) || doc.at(iv).value < 0) return Error::bad_interval;
  r.interval = std::min(doc.at(iv).value, kMaxInterval);
  if (const uint32_t m = doc.find(0, "min interval"); doc.is(m, Type::integer))
    r.min_interval = std::clamp<int64_t>(doc.at(m).value, 0, kMaxInterval);
  if (const uint32_t c = doc.find(0, "complete"); doc.is(c, Type::integer) && doc.at(c).value >= 0)
    r.complete = doc.at(c).value;
  if (const uint32_t c = doc.find(0, "incomplete");
      doc.is(c, Type::integer) && doc.at(c).value >= 0)
    r.incomplete = doc.at(c).value;

  const uint32_t p = doc.find(0, "peers");
  if (p == kNone) return Error::ok;  // no peers (yet)
  auto take = [&](PeerAddr a) {
    if (a.port_be == 0 || r.peers == peers.size())
      ++r.skipped;
    else
      peers[r.peers++] = a;
  };
  if (doc.is(p, Type::string)) {  // compact (BEP 23): 4 address bytes, 2 port bytes each
    const std::string_view s = doc.str(p);
    if (s.size() % 6) return Error::bad_peers;
    for (size_t i = 0; i < s.size(); i += 6) {
      PeerAddr a;
      std::memcpy(&a.addr_be, s.data() + i, 4);
      std::memcpy(&a.port_be, s.data() + i + 4, 2);
      take(a);
    }
    return Error::ok;
  }
  if (!doc.is(p, Type::list)) return Error::bad_peers;
  uint32_t e = p + 1;
  for (uint32_t k = 0; k < doc.at(p).count; ++k, e = doc.next_item(e)) {
    if (!doc.is(e, Type::dict)) return Error::bad_peers;
    const uint32_t ip = doc.find(e, "ip"), port = doc.find(e, "port");
    PeerAddr a;
    if (!doc.is(ip, Type::string) || !doc.is(port, Type::integer) ||
        !parse_ipv4(doc.str(ip), a.addr_be) || doc.at(port).value < 1 ||
        doc.at(port).value > 65535) {
      ++r.skipped;  // a host name or IPv6: not reachable by an IPv4 connect
      continue;
    }
    const uint16_t host = uint16_t(doc.at(port).value);
    const uint8_t b[2] = {uint8_t(host >> 8), uint8_t(host)};
    std::memcpy(&a.port_be, b, 2);
    take(a);
  }
  return Error::ok;
}

}  // namespace cw::swarm::tracker
