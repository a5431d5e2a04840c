// libFuzzer entry point for the manifest decoder (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  detourfs::fuzz::FuzzManifest(data, size);
  return 0;
}
