// The model checker as the tests run it (stress_tool.h).
#include "lib/stress_tool.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace detourfs::testing {

std::string StressBin() {
  const char* bin = std::getenv("DETOURFS_STRESS_BIN");
  return bin != nullptr ? bin : "detourfs-stress";
}

unsigned long long StressSeed() {  // NOLINT
  const char* s = std::getenv("DETOURFS_STRESS_SEED");
  unsigned long long seed = s != nullptr
                                ? std::strtoull(s, nullptr, 10)                         // NOLINT
                                : static_cast<unsigned long long>(std::time(nullptr));  // NOLINT
  std::printf("detourfs-stress seed %llu (set DETOURFS_STRESS_SEED to replay)\n", seed);
  return seed;
}

}  // namespace detourfs::testing
