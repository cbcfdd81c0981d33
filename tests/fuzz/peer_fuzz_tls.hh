// What the peer fuzz targets (peer_fuzz.cc, peer_api_fuzz.cc) share: real credentials (a CA
// and a node certificate made by control/cluster_certs.hh in a temporary directory, loaded,
// the files removed; once, from LLVMFuzzerInitialize; aborts on failure) and the endpoint's
// configuration (two server slots, one peer dialed).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "app/services/peer/endpoint.hh"
#include "app/services/peer/tls.hh"
#include "control/cluster_certs.hh"

namespace cw::peer {

inline const TlsContext* fuzz_tls() {
  char tmpl[] = "/tmp/cw-peer-fuzz-XXXXXX";
  if (!mkdtemp(tmpl)) std::abort();
  const std::string d = tmpl;
  if (!cw::ctl::init_ca(d + "/ca", "fuzz CA").empty() ||
      !cw::ctl::issue_cert(d + "/ca", "node", d + "/n").empty())
    std::abort();
  auto* tls = new TlsContext();
  if (!tls->load(d + "/n/node.pem", d + "/n/node.key", d + "/ca/ca.pem").empty()) std::abort();
  (void)std::system(("rm -rf " + d).c_str());  // loaded: the files are no longer needed
  return tls;
}

inline constexpr dp::Endpoint kFuzzPeer{0x0200007f, 0x3333};  // the peer dialed

inline EndpointConfig fuzz_endpoint_config() {
  EndpointConfig cfg;
  cfg.max_inbound = 2;
  cfg.dial = {kFuzzPeer};
  cfg.server_local = {0x0100007f, 0x1111};
  cfg.client_local = {0x0100007f, 0x2222};
  return cfg;
}

}  // namespace cw::peer
