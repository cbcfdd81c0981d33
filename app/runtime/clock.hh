// The runtime's name for the one monotonic clock (dataplane/clock.hh).
#pragma once

#include "dataplane/clock.hh"

namespace cw::rt {

using dp::now_ns;

}  // namespace cw::rt
