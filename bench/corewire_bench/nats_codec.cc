#include "bench/corewire_bench/nats_codec.hh"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace cw::bench::nats {
namespace {

void put64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = uint8_t(v >> (8 * i));
}
uint64_t get64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(in[i]) << (8 * i);
  return v;
}

uint32_t digits(uint64_t v) {
  char b[20];
  return uint32_t(std::to_chars(b, b + sizeof b, v).ptr - b);
}

char* put(char* o, std::string_view s) {
  std::memcpy(o, s.data(), s.size());
  return o + s.size();
}
char* put_num(char* o, uint64_t v) {
  return std::to_chars(o, o + 20, v).ptr;
}

constexpr std::string_view kConnectHead =
    "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":true,\"headers\":false,"
    "\"protocol\":1,\"lang\":\"c++\",\"version\":\"1\",\"name\":\"";
constexpr std::string_view kConnectTail = "\"}\r\n";

bool space(uint8_t c) {
  return c == ' ' || c == '\t';
}
uint8_t upper(uint8_t c) {
  return c >= 'a' && c <= 'z' ? uint8_t(c - 32) : c;
}

// Up to kMaxArgs whitespace-separated arguments of a control line (after its op).
constexpr uint32_t kMaxArgs = 6;
struct Args {
  std::string_view a[kMaxArgs];
  uint32_t n = 0;
  bool too_many = false;
};
Args split(std::string_view s) {
  Args r;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && space(uint8_t(s[i]))) ++i;
    if (i == s.size()) break;
    const size_t b = i;
    while (i < s.size() && !space(uint8_t(s[i]))) ++i;
    if (r.n == kMaxArgs) {
      r.too_many = true;
      break;
    }
    r.a[r.n++] = s.substr(b, i - b);
  }
  return r;
}
bool num(std::string_view s, uint64_t max, uint64_t& v) {
  if (s.empty() || s.size() > 20) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && v <= max;
}

// The op of a control line (case-insensitive, as nats-server reads it): its kind, and where
// its arguments start (after one separator), or bad.
struct Op {
  Ev kind = Ev::bad;
  bool hmsg = false;
  size_t args = 0;
};
Op op_of(std::string_view line) {
  auto is = [&](std::string_view w) {
    if (line.size() < w.size()) return false;
    for (size_t i = 0; i < w.size(); ++i)
      if (upper(uint8_t(line[i])) != uint8_t(w[i])) return false;
    // The op ends the line or is followed by whitespace.
    return line.size() == w.size() || space(uint8_t(line[w.size()]));
  };
  if (is("MSG")) return {Ev::msg, false, 3};
  if (is("HMSG")) return {Ev::msg, true, 4};
  if (is("PING")) return {Ev::ping, false, 4};
  if (is("PONG")) return {Ev::pong, false, 4};
  if (is("+OK")) return {Ev::ok, false, 3};
  if (is("-ERR")) return {Ev::err, false, 4};
  if (is("INFO")) return {Ev::info, false, 4};
  return {};
}

// MSG <subject> <sid> [reply-to] <#bytes> / HMSG <subject> <sid> [reply-to] <#hdr> <#total>:
// st gets sid, sizes and an empty head. False: malformed.
bool msg_line(RxState& st, std::string_view args, bool hmsg) {
  const Args a = split(args);
  const uint32_t sizes = hmsg ? 2 : 1;
  if (a.too_many || a.n < 2 + sizes || a.n > 3 + sizes) return false;
  uint64_t sid, hdr = 0, total;
  if (!num(a.a[1], UINT32_MAX, sid)) return false;
  if (!num(a.a[a.n - 1], kMaxPayload, total)) return false;
  if (hmsg && (!num(a.a[a.n - 2], total, hdr))) return false;
  st.sid = uint32_t(sid);
  st.total = uint32_t(total);
  st.skip = uint32_t(hdr);
  st.head_have = 0;
  st.remaining = total + 2;
  return true;
}

// Takes payload bytes (and the final CRLF) of the current message from in; returns the
// bytes taken, or kBadTail when the payload is not followed by CRLF.
constexpr uint32_t kBadTail = ~uint32_t{0};
uint32_t take_payload(RxState& st, std::span<const uint8_t> in) {
  const uint64_t size = uint64_t(st.total) + 2;
  const uint64_t pos = size - st.remaining;  // offset of in[0] within payload + CRLF
  const uint32_t n = uint32_t(std::min<uint64_t>(st.remaining, in.size()));
  // The stamp: payload-proper bytes [skip, skip + kStampSize), as far as the payload goes.
  const uint64_t want_end = std::min<uint64_t>(uint64_t(st.skip) + kStampSize, st.total);
  const uint64_t lo = std::max<uint64_t>(pos, uint64_t(st.skip) + st.head_have);
  const uint64_t hi = std::min<uint64_t>(pos + n, want_end);
  if (lo < hi) {
    std::memcpy(st.head + st.head_have, in.data() + (lo - pos), size_t(hi - lo));
    st.head_have += uint32_t(hi - lo);
  }
  // The CRLF after the payload, where it falls in this piece.
  for (uint64_t p = std::max<uint64_t>(pos, st.total); p < pos + n; ++p)
    if (in[size_t(p - pos)] != (p == st.total ? '\r' : '\n')) return kBadTail;
  st.remaining -= n;
  return n;
}

}  // namespace

void put_stamp(uint8_t* out, const Stamp& s) {
  put64(out, s.intended_ns);
  put64(out + 8,
        (s.measured ? kMeasured : 0) | (uint64_t(s.pub) << (63 - kPubBits)) | (s.seq & kSeqMask));
}

Stamp get_stamp(const uint8_t* in) {
  const uint64_t w = get64(in + 8);
  return {get64(in), uint32_t((w & ~kMeasured) >> (63 - kPubBits)), w & kSeqMask,
          (w & kMeasured) != 0};
}

uint32_t connect_size(std::string_view name) {
  return uint32_t(kConnectHead.size() + name.size() + kConnectTail.size());
}
uint32_t encode_connect(char* out, std::string_view name) {
  char* o = put(put(put(out, kConnectHead), name), kConnectTail);
  return uint32_t(o - out);
}

uint32_t sub_size(std::string_view subject, std::string_view queue, uint32_t sid) {
  return uint32_t(4 + subject.size() + 1 + (queue.empty() ? 0 : queue.size() + 1) + digits(sid) +
                  2);
}
uint32_t encode_sub(char* out, std::string_view subject, std::string_view queue, uint32_t sid) {
  char* o = put(put(out, "SUB "), subject);
  *o++ = ' ';
  if (!queue.empty()) {
    o = put(o, queue);
    *o++ = ' ';
  }
  o = put(put_num(o, sid), "\r\n");
  return uint32_t(o - out);
}

uint32_t pub_line_size(std::string_view subject, uint32_t payload) {
  return uint32_t(4 + subject.size() + 1 + digits(payload) + 2);
}
uint32_t encode_pub_line(char* out, std::string_view subject, uint32_t payload) {
  char* o = put(put(out, "PUB "), subject);
  *o++ = ' ';
  o = put(put_num(o, payload), "\r\n");
  return uint32_t(o - out);
}

Event next(RxState& st, std::span<const uint8_t> in) {
  uint32_t used = 0;
  if (in.empty()) return {Ev::need_more, 0};
  if (st.remaining == 0) {
    // A control line: whole, up to its CRLF (a bare LF is taken too, as nats-server does).
    const size_t scan = std::min<size_t>(in.size(), kMaxControlLine + 2);
    const auto* nl = static_cast<const uint8_t*>(std::memchr(in.data(), '\n', scan));
    if (!nl) return {in.size() > kMaxControlLine + 1 ? Ev::bad : Ev::need_more, 0};
    size_t end = size_t(nl - in.data());
    used = uint32_t(end + 1);
    if (end > 0 && in[end - 1] == '\r') --end;
    const std::string_view line(reinterpret_cast<const char*>(in.data()), end);
    const Op op = op_of(line);
    if (op.kind == Ev::bad) return {Ev::bad, used};
    if (op.kind != Ev::msg) return {op.kind, used};
    if (!msg_line(st, line.substr(op.args), op.hmsg)) return {Ev::bad, used};
  }
  const uint32_t n = take_payload(st, in.subspan(used));
  if (n == kBadTail) return {Ev::bad, used};
  used += n;
  return {st.remaining == 0 ? Ev::msg : Ev::need_more, used};
}

}  // namespace cw::bench::nats
