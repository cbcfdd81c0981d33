// The cluster's certificates (docs/cluster.md, "Certificates"): a CA of its own and a
// certificate per node that it signs, as `corewirectl cluster init-ca` and `issue-cert` make
// them. GnuTLS's X.509 API does the work (the same library that checks them in the peer
// service), so no certtool is needed on a node. ECDSA P-256 keys, SHA-256 signatures; keys
// are written mode 0600. Setup/CLI only.
#pragma once

#include <string>

namespace cw::ctl {

inline constexpr unsigned kCaDays = 3650;
inline constexpr unsigned kNodeDays = 825;

// Makes DIR/ca.pem and DIR/ca.key (DIR is created if missing; existing files are not
// overwritten). Empty on success, else one line saying what failed.
std::string init_ca(const std::string& dir, const std::string& name, unsigned days = kCaDays);

// Makes OUT/NAME.pem (the node's certificate, then the CA's) and OUT/NAME.key, signed by the
// CA in CA_DIR, good for TLS server and client authentication with NAME as common name and
// DNS alternative name.
std::string issue_cert(const std::string& ca_dir, const std::string& name,
                       const std::string& out_dir, unsigned days = kNodeDays);

}  // namespace cw::ctl
