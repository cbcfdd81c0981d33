// What the swarm fuzz targets share: a check that aborts (libFuzzer reports an abort as a
// crash with its input).
#pragma once

#include <cstdlib>

#define SWARM_CHECK(c)      \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)
