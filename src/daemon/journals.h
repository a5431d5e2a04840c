// The daemon's write-back journals: at start, each tier's journal is read
// (what it holds, and whether the journal alone names every change since it
// began, logged), a new segment is begun, and the change layer's records
// are fed to it through a JournalSink.
#pragma once

#include <array>
#include <memory>

#include "route/router.h"
#include "store/change_record.h"
#include "store/layer_dirs.h"

namespace detourfs {

// The sink for the change layer: the tiers' journals (those of `layers`
// that are tiers), plus `also` (may be null). A journal that cannot be
// begun is logged and left out: its tier's changes are then found by
// comparing the tier with the volume.
std::unique_ptr<ChangeSink> OpenJournals(const std::array<LayerDirs, kLayerCount>& layers,
                                         const Router& router, std::unique_ptr<ChangeSink> also);

}  // namespace detourfs
