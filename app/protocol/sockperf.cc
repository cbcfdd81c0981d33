#include "app/protocol/sockperf.hh"

namespace cw::proto::sockperf {

void encode_header(uint8_t* out, const Header& h) {
  store_be<uint64_t>(out, h.seq);
  store_be<uint16_t>(out + 8, h.flags);
  store_be<uint32_t>(out + 10, h.len);
}

}  // namespace cw::proto::sockperf
