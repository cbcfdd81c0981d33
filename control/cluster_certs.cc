// The cluster's certificates (cluster_certs.hh).
#include "control/cluster_certs.hh"

#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sys/stat.h>
#include <unistd.h>
#include <system_error>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace cw::ctl {
namespace {

struct Key {
  gnutls_x509_privkey_t k = nullptr;
  ~Key() {
    if (k) gnutls_x509_privkey_deinit(k);
  }
};
struct Crt {
  gnutls_x509_crt_t c = nullptr;
  ~Crt() {
    if (c) gnutls_x509_crt_deinit(c);
  }
};

std::string err(const std::string& what, int rv) {
  return what + ": " + gnutls_strerror(rv);
}

// Writes text to path, failing if it exists; mode 0600 for keys.
std::string write_new(const std::string& path, const gnutls_datum_t& d, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    return path + ": " + std::strerror(errno) + (errno == EEXIST ? " (not overwritten)" : "");
  const ssize_t n = ::write(fd, d.data, d.size);
  const bool ok = n == ssize_t(d.size) && ::close(fd) == 0;
  if (!ok) {
    if (n != ssize_t(d.size)) ::close(fd);
    return path + ": write failed";
  }
  return {};
}

std::string read_all(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return path + ": cannot read";
  out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return {};
}

// Creates dir and its missing parents.
std::string make_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return dir + ": " + ec.message();
  return {};
}

// A fresh key and a v3 certificate for it named `name`, valid from a minute ago for `days`.
std::string start(Key& key, Crt& crt, const std::string& name, unsigned days) {
  if (int rv = gnutls_x509_privkey_init(&key.k); rv < 0) return err("key", rv);
  if (int rv = gnutls_x509_privkey_generate(key.k, GNUTLS_PK_ECDSA,
                                            GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
      rv < 0)
    return err("key generation", rv);
  if (int rv = gnutls_x509_crt_init(&crt.c); rv < 0) return err("certificate", rv);
  unsigned char serial[16];
  if (int rv = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial); rv < 0) return err("rnd", rv);
  serial[0] &= 0x7f;  // a positive INTEGER
  const time_t now = std::time(nullptr);
  int rv = gnutls_x509_crt_set_version(crt.c, 3);
  if (rv == 0) rv = gnutls_x509_crt_set_serial(crt.c, serial, sizeof serial);
  if (rv == 0) rv = gnutls_x509_crt_set_activation_time(crt.c, now - 60);
  if (rv == 0) rv = gnutls_x509_crt_set_expiration_time(crt.c, now + time_t(days) * 86400);
  if (rv == 0)
    rv = gnutls_x509_crt_set_dn_by_oid(crt.c, GNUTLS_OID_X520_COMMON_NAME, 0, name.data(),
                                       unsigned(name.size()));
  if (rv == 0) rv = gnutls_x509_crt_set_key(crt.c, key.k);
  if (rv == 0) {
    unsigned char id[64];
    size_t idlen = sizeof id;
    rv = gnutls_x509_crt_get_key_id(crt.c, GNUTLS_KEYID_USE_SHA1, id, &idlen);
    if (rv == 0) rv = gnutls_x509_crt_set_subject_key_id(crt.c, id, idlen);
  }
  return rv < 0 ? err("certificate fields", rv) : std::string();
}

std::string save(const Crt& crt, const Crt* ca, const Key& key, const std::string& crt_path,
                 const std::string& key_path) {
  gnutls_datum_t kd{}, cd{}, cad{};
  int rv = gnutls_x509_privkey_export2(key.k, GNUTLS_X509_FMT_PEM, &kd);
  if (rv == 0) rv = gnutls_x509_crt_export2(crt.c, GNUTLS_X509_FMT_PEM, &cd);
  if (rv == 0 && ca) rv = gnutls_x509_crt_export2(ca->c, GNUTLS_X509_FMT_PEM, &cad);
  std::string e = rv < 0 ? err("export", rv) : std::string();
  std::string chain;
  if (e.empty()) {
    chain.assign(reinterpret_cast<const char*>(cd.data), cd.size);
    if (ca) chain.append(reinterpret_cast<const char*>(cad.data), cad.size);
    const gnutls_datum_t all{reinterpret_cast<unsigned char*>(chain.data()),
                             unsigned(chain.size())};
    e = write_new(key_path, kd, 0600);
    if (e.empty()) e = write_new(crt_path, all, 0644);
  }
  gnutls_free(kd.data);
  gnutls_free(cd.data);
  gnutls_free(cad.data);
  return e;
}

}  // namespace

std::string init_ca(const std::string& dir, const std::string& name, unsigned days) {
  if (std::string e = make_dir(dir); !e.empty()) return e;
  Key key;
  Crt crt;
  if (std::string e = start(key, crt, name, days); !e.empty()) return e;
  int rv = gnutls_x509_crt_set_basic_constraints(crt.c, 1, -1);
  if (rv == 0)
    rv = gnutls_x509_crt_set_key_usage(crt.c, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
  if (rv == 0) rv = gnutls_x509_crt_sign2(crt.c, crt.c, key.k, GNUTLS_DIG_SHA256, 0);
  if (rv < 0) return err("self-signing", rv);
  return save(crt, nullptr, key, dir + "/ca.pem", dir + "/ca.key");
}

std::string issue_cert(const std::string& ca_dir, const std::string& name,
                       const std::string& out_dir, unsigned days) {
  std::string ca_pem, ca_key;
  if (std::string e = read_all(ca_dir + "/ca.pem", ca_pem); !e.empty()) return e;
  if (std::string e = read_all(ca_dir + "/ca.key", ca_key); !e.empty()) return e;
  Crt ca;
  Key cakey;
  const gnutls_datum_t pd{reinterpret_cast<unsigned char*>(ca_pem.data()), unsigned(ca_pem.size())};
  const gnutls_datum_t kd{reinterpret_cast<unsigned char*>(ca_key.data()), unsigned(ca_key.size())};
  int rv = gnutls_x509_crt_init(&ca.c);
  if (rv == 0) rv = gnutls_x509_crt_import(ca.c, &pd, GNUTLS_X509_FMT_PEM);
  if (rv < 0) return err(ca_dir + "/ca.pem", rv);
  rv = gnutls_x509_privkey_init(&cakey.k);
  if (rv == 0) rv = gnutls_x509_privkey_import(cakey.k, &kd, GNUTLS_X509_FMT_PEM);
  if (rv < 0) return err(ca_dir + "/ca.key", rv);
  if (std::string e = make_dir(out_dir); !e.empty()) return e;
  Key key;
  Crt crt;
  if (std::string e = start(key, crt, name, days); !e.empty()) return e;
  rv = gnutls_x509_crt_set_basic_constraints(crt.c, 0, -1);
  if (rv == 0) rv = gnutls_x509_crt_set_key_usage(crt.c, GNUTLS_KEY_DIGITAL_SIGNATURE);
  if (rv == 0) rv = gnutls_x509_crt_set_key_purpose_oid(crt.c, GNUTLS_KP_TLS_WWW_SERVER, 0);
  if (rv == 0) rv = gnutls_x509_crt_set_key_purpose_oid(crt.c, GNUTLS_KP_TLS_WWW_CLIENT, 0);
  if (rv == 0)
    rv = gnutls_x509_crt_set_subject_alt_name(crt.c, GNUTLS_SAN_DNSNAME, name.data(),
                                              unsigned(name.size()), GNUTLS_FSAN_SET);
  if (rv == 0) rv = gnutls_x509_crt_sign2(crt.c, ca.c, cakey.k, GNUTLS_DIG_SHA256, 0);
  if (rv < 0) return err("signing", rv);
  return save(crt, &ca, key, out_dir + "/" + name + ".pem", out_dir + "/" + name + ".key");
}

}  // namespace cw::ctl
