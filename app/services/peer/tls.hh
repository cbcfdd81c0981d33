// Mutual TLS 1.3 for peer sessions (docs/cluster.md): every node holds a certificate and key
// signed by the cluster's CA. A server requires the client's certificate; both sides verify
// the other's against the CA file (no host name check: a node is whoever the CA signed) and
// insist on the ALPN "corewire-peer/1". The QUIC side of TLS is ngtcp2's GnuTLS glue
// (ngtcp2_crypto_gnutls); nothing here is hand-written crypto. Setup-only, except that a
// session is made per connection (not per packet).
#pragma once

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <array>
#include <cstdint>
#include <string>

namespace cw::peer {

inline constexpr char kAlpn[] = "corewire-peer/1";

// SHA-256 of a certificate's DER: how etcd membership names the certificate a node holds.
using Fingerprint = std::array<uint8_t, 32>;

// How the peer's certificate fared, for counting why a handshake failed. mismatch: the CA
// signed it, but it is not the one the link was pinned to.
enum class CertVerdict : uint8_t { none, ok, refused, mismatch };

// What a connection hands its TLS session: ngtcp2's conn ref first (GnuTLS's session pointer
// points at it, and the glue reaches the connection through it), then the verdict the
// verification callback leaves and the fingerprint of the certificate it accepted. Owned by
// the connection; outlives its session.
struct TlsLink {
  ngtcp2_crypto_conn_ref ref{};
  CertVerdict verdict = CertVerdict::none;
  bool pinned = false;  // the peer must hold the certificate whose fingerprint is pin
  Fingerprint pin{};
  Fingerprint peer{};  // the peer's certificate's, once verdict is ok
};

class TlsContext {
 public:
  TlsContext() = default;
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Loads the node's certificate chain and key and the CA (PEM files). Empty on success,
  // else one line saying what failed.
  std::string load(const std::string& cert_file, const std::string& key_file,
                   const std::string& ca_file);

  // A session for one connection (server: requires the client's certificate), tied to link;
  // nullptr when GnuTLS fails (out of memory). The caller frees it with gnutls_deinit.
  gnutls_session_t new_session(bool server, TlsLink* link) const;

  bool loaded() const { return cred_ != nullptr; }
  // This node's certificate's (the first of its chain), once loaded.
  const Fingerprint& fingerprint() const { return own_; }

 private:
  gnutls_certificate_credentials_t cred_ = nullptr;
  Fingerprint own_{};
};

}  // namespace cw::peer
