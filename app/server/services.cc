// Config -> AppSpec for the server's own registry. Setup-only.
#include "app/server/services.hh"

#include "app/server/config.hh"

namespace cw::server {

const ServiceCatalog& server_catalog() {
  static const ServiceCatalog c = catalog_of(kRegistry);
  return c;
}

rt::AppSpec<Services> make_app(const ServerConfig& cfg) {
  return make_app(cfg, kRegistry);
}

}  // namespace cw::server
