// The model checker (tests/stress, detourfs-stress) as the tests run it:
// where its binary is and the seed of a run.
#pragma once

#include <string>

namespace detourfs::testing {

// $DETOURFS_STRESS_BIN, else detourfs-stress on the PATH.
std::string StressBin();

// $DETOURFS_STRESS_SEED, else the time; printed, so a failure can be
// replayed with the same seed.
unsigned long long StressSeed();  // NOLINT

}  // namespace detourfs::testing
