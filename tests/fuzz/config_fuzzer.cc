// libFuzzer entry point for the config parser and validator (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  detourfs::fuzz::FuzzConfig(data, size);
  return 0;
}
