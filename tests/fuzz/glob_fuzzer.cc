// libFuzzer entry point for the glob matcher (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  detourfs::fuzz::FuzzGlob(data, size);
  return 0;
}
