// At start, before anything is served: epochs a crash or a kill left on the
// volume are finished (committed) or discarded (not), and what was done is
// logged (docs/flush.md, "Recovery").
#pragma once

#include <memory>

#include "flush/epoch_area.h"

namespace detourfs {

// Recovers the flush epochs of the volume whose root is `volume`, and
// returns the volume's epoch area (null when it has none, or it could not
// be opened), whose lock keeps `detourctl recover` off while the daemon
// runs. An epoch that could not be finished is logged with why; serving
// goes on all the same: the tiers still hold the data.
std::unique_ptr<flush::EpochArea> RecoverFlushAtStart(int volume);

}  // namespace detourfs
