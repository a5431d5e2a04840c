// At start, before anything is served: epochs a crash or a kill left on the
// volume are finished (committed) or discarded (not), and what was done is
// logged (docs/flush.md, "Recovery").
#pragma once

namespace detourfs {

// Recovers the flush epochs of the volume whose root is `volume`. Returns
// false when one could not be finished (logged with why); serving goes on
// all the same: the tiers still hold the data.
bool RecoverFlushAtStart(int volume);

}  // namespace detourfs
