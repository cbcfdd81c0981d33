// What the rtp fuzz targets share: the codec under test and a check that aborts (libFuzzer
// reports an abort as a crash with its input).
#pragma once

#include <cstdlib>

#include "app/services/rtp/protocol.hh"

#define RTP_CHECK(c)        \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)
