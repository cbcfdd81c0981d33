// Two QUIC endpoints joined in memory for the peer tests (endpoint_test.cc, api_test.cc):
// certificates from certtool (a CA, nodes a and b it signed, c signed by a rogue CA), and a
// Net that flushes both endpoints each round, hands each one's packets to the other and runs
// the deadlines that passed, on a simulated clock.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "app/services/peer/endpoint.hh"

namespace cw::peer::test {

// A CA, two nodes it signed and one a rogue CA signed, in a temporary directory.
class Certs {
 public:
  Certs() {
    if (access("/usr/bin/certtool", X_OK) != 0) return;
    char tmpl[] = "/tmp/cw-peer-test-XXXXXX";
    if (!mkdtemp(tmpl)) return;
    dir_ = tmpl;
    const std::string script =
        "cd " + dir_ +
        " && printf 'cn = \"ca\"\\nca\\ncert_signing_key\\nexpiration_days = 2\\n' > ca.t"
        " && printf 'cn = \"node\"\\ntls_www_server\\ntls_www_client\\nsigning_key\\n"
        "expiration_days = 2\\n' > n.t"
        " && for c in ca rogue; do certtool --generate-privkey --key-type=ecdsa --outfile $c.key"
        " && certtool --generate-self-signed --load-privkey $c.key --template ca.t"
        " --outfile $c.pem || exit 1; done"
        " && for n in a:ca b:ca c:rogue; do k=${n%:*}; c=${n#*:};"
        " certtool --generate-privkey --key-type=ecdsa --outfile $k.key"
        " && certtool --generate-certificate --load-privkey $k.key --load-ca-certificate $c.pem"
        " --load-ca-privkey $c.key --template n.t --outfile $k.pem || exit 1; done";
    ok_ = std::system(("(" + script + ") >/dev/null 2>&1").c_str()) == 0;
  }
  ~Certs() {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  bool ok() const { return ok_; }
  std::string f(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
  bool ok_ = false;
};

inline const Certs& certs() {
  static Certs c;
  return c;
}

inline constexpr dp::Endpoint kA{0x0100007f, 0x1111};  // A's client port
inline constexpr dp::Endpoint kB{0x0100007f, 0x2222};  // B's server port

struct Net {
  QuicEndpoint& a;  // dials B
  QuicEndpoint& b;  // accepts
  uint64_t now = 1'000'000'000;

  static void deliver(QuicEndpoint& from, QuicEndpoint& to, Via via, dp::Endpoint src,
                      dp::Endpoint dst, uint64_t now) {
    for (const OutPacket& p : from.outbox()) {
      ASSERT_EQ(p.to, dst);
      to.on_datagram(via, src, p.data, p.len, now);
    }
    from.clear_outbox();
  }
  static void expire(QuicEndpoint& e, uint64_t now) {
    for (uint32_t s = 0; s < e.slots(); ++s)
      if (e.expiry(s) <= now) e.on_expiry(s, now);
    e.clear_timer_changes();
  }
  void round(uint64_t step_ns = 200'000) {
    a.flush(now);
    deliver(a, b, Via::server, kA, kB, now);
    b.flush(now);
    deliver(b, a, Via::client, kB, kA, now);
    expire(a, now);
    expire(b, now);
    now += step_ns;
  }
};

inline EndpointConfig dialer() {
  EndpointConfig c;
  c.max_inbound = 0;
  c.dial = {kB};
  c.client_local = kA;
  c.handshake_timeout_ns = 2'000'000'000;
  c.retry_ns = 60'000'000'000;  // one attempt within a test
  return c;
}

inline EndpointConfig acceptor() {
  EndpointConfig c;
  c.max_inbound = 4;
  c.server_local = kB;
  return c;
}

#define NEED_CERTS() \
  if (!certs().ok()) GTEST_SKIP() << "certtool (gnutls-bin) is not installed"

}  // namespace cw::peer::test
