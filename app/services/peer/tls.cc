// Mutual TLS for peer sessions (tls.hh).
#include "app/services/peer/tls.hh"

#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <cstddef>

namespace cw::peer {
namespace {

// TLS 1.3 only, QUIC's AEADs, no middlebox compatibility mode (RFC 9001 8.4).
constexpr char kPriority[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:"
    "%DISABLE_TLS13_COMPAT_MODE";

bool sha256(const gnutls_datum_t& der, Fingerprint& out) {
  size_t n = out.size();
  return gnutls_fingerprint(GNUTLS_DIG_SHA256, &der, out.data(), &n) == 0 && n == out.size();
}

// Runs when the peer's certificate arrives: it must be there, chain to the CA and, on a
// pinned link, be the pinned one. A refusal fails the handshake (GnuTLS sends the alert) and
// is left in the link for the counters.
int verify_peer(gnutls_session_t s) {
  auto* link = static_cast<TlsLink*>(gnutls_session_get_ptr(s));
  unsigned status = 0;
  unsigned n = 0;
  const gnutls_datum_t* certs = gnutls_certificate_get_peers(s, &n);
  const bool has_cert = certs != nullptr && n > 0;
  const int rv = has_cert ? gnutls_certificate_verify_peers2(s, &status) : -1;
  Fingerprint fp{};
  const bool ok = has_cert && rv == 0 && status == 0 && sha256(certs[0], fp);
  if (!link) return ok ? 0 : GNUTLS_E_CERTIFICATE_ERROR;
  link->verdict = ok ? CertVerdict::ok : CertVerdict::refused;
  link->peer = fp;
  if (ok && link->pinned && fp != link->pin) link->verdict = CertVerdict::mismatch;
  return link->verdict == CertVerdict::ok ? 0 : GNUTLS_E_CERTIFICATE_ERROR;
}

}  // namespace

static_assert(offsetof(TlsLink, ref) == 0, "GnuTLS's session pointer is the link's conn ref");

TlsContext::~TlsContext() {
  if (cred_) gnutls_certificate_free_credentials(cred_);
}

std::string TlsContext::load(const std::string& cert_file, const std::string& key_file,
                             const std::string& ca_file) {
  if (int rv = gnutls_certificate_allocate_credentials(&cred_); rv != 0) {
    cred_ = nullptr;
    return std::string("gnutls: ") + gnutls_strerror(rv);
  }
  const int cas =
      gnutls_certificate_set_x509_trust_file(cred_, ca_file.c_str(), GNUTLS_X509_FMT_PEM);
  std::string err;
  if (cas < 0)
    err = "ca \"" + ca_file + "\": " + gnutls_strerror(cas);
  else if (cas == 0)
    err = "ca \"" + ca_file + "\": no certificate in it";
  else if (int rv = gnutls_certificate_set_x509_key_file(cred_, cert_file.c_str(), key_file.c_str(),
                                                         GNUTLS_X509_FMT_PEM);
           rv < 0)
    err = "cert \"" + cert_file + "\" / key \"" + key_file + "\": " + gnutls_strerror(rv);
  if (!err.empty()) {
    gnutls_certificate_free_credentials(cred_);
    cred_ = nullptr;
    return err;
  }
  gnutls_datum_t der{};
  if (gnutls_certificate_get_crt_raw(cred_, 0, 0, &der) != 0 || !sha256(der, own_)) {
    gnutls_certificate_free_credentials(cred_);
    cred_ = nullptr;
    return "cert \"" + cert_file + "\": cannot take its SHA-256 fingerprint";
  }
  gnutls_certificate_set_verify_function(cred_, verify_peer);
  return {};
}

gnutls_session_t TlsContext::new_session(bool server, TlsLink* link) const {
  gnutls_session_t s = nullptr;
  const unsigned flags = (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_END_OF_EARLY_DATA;
  if (gnutls_init(&s, flags) != 0) return nullptr;
  const int glue = server ? ngtcp2_crypto_gnutls_configure_server_session(s)
                          : ngtcp2_crypto_gnutls_configure_client_session(s);
  gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>(kAlpn)),
                      unsigned(sizeof(kAlpn) - 1)};
  if (glue != 0 || gnutls_priority_set_direct(s, kPriority, nullptr) != 0 ||
      gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred_) != 0 ||
      gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0) {
    gnutls_deinit(s);
    return nullptr;
  }
  if (server) {
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
    // No list of acceptable CAs: a client whose certificate another CA signed would send
    // none and fail as "missing"; this way it presents it and verify_peer refuses it.
    gnutls_certificate_send_x509_rdn_sequence(s, 1);
  }
  gnutls_session_set_ptr(s, &link->ref);
  return s;
}

}  // namespace cw::peer
