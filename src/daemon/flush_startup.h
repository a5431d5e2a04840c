// At start, before anything is served: epochs a crash or a kill left on the
// volume are finished (committed) or discarded (not), and what was done is
// logged (docs/flush.md, "Recovery").
#pragma once

#include <memory>

#include "detourfs/status.h"
#include "flush/epoch_area.h"

namespace detourfs {

// Recovers the flush epochs of the volume whose root is `volume` and puts
// its epoch area in `*area` (null when it has none, or it could not be
// opened): its lock keeps `detourctl recover` and a second daemon off while
// this one runs. With `routed` the area is made if missing, so it is
// always locked. An error only when another process holds the area (the
// daemon must not serve then); an epoch that could not be finished is
// logged with why, and serving goes on: the tiers still hold the data.
Status RecoverFlushAtStart(int volume, bool routed, std::unique_ptr<flush::EpochArea>* area);

}  // namespace detourfs
