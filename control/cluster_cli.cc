// corewirectl cluster init-ca | issue-cert (docs/cluster.md, "Certificates").
#include <spdlog/spdlog.h>

#include "control/cli.hh"
#include "control/cluster_certs.hh"

namespace cw::ctl {

namespace {

// A node name becomes a file name and a DNS name: letters, digits, '-' and '.'.
bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 63 || n[0] == '.' || n[0] == '-') return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.'))
      return false;
  return true;
}

}  // namespace

int cmd_cluster_init_ca(const std::string& dir, const std::string& name) {
  if (std::string e = init_ca(dir, name); !e.empty()) {
    spdlog::error("cluster init-ca: {}", e);
    return 1;
  }
  spdlog::info("cluster init-ca: wrote {0}/ca.pem and {0}/ca.key (keep ca.key off the nodes)", dir);
  return 0;
}

int cmd_cluster_issue_cert(const std::string& ca_dir, const std::string& name,
                           const std::string& out_dir) {
  if (!valid_name(name)) {
    spdlog::error("cluster issue-cert: --name must be 1-63 letters, digits, '-' or '.'");
    return 2;
  }
  if (std::string e = issue_cert(ca_dir, name, out_dir); !e.empty()) {
    spdlog::error("cluster issue-cert: {}", e);
    return 1;
  }
  spdlog::info("cluster issue-cert: wrote {0}/{1}.pem and {0}/{1}.key", out_dir, name);
  return 0;
}

}  // namespace cw::ctl
