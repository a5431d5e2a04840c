// Layer: where a file lives — the volume (the lower directory the mount is
// made over) or a tier (memory: a tmpfs; disk: node-local storage).
#pragma once

#include <cstddef>
#include <cstdint>

namespace detourfs {

enum class Layer : uint8_t { kVolume = 0, kMemory = 1, kDisk = 2 };
inline constexpr size_t kLayerCount = 3;
inline constexpr Layer kAllLayers[] = {Layer::kVolume, Layer::kMemory, Layer::kDisk};
inline constexpr Layer kTiers[] = {Layer::kMemory, Layer::kDisk};

inline constexpr size_t Index(Layer layer) { return static_cast<size_t>(layer); }
inline constexpr bool IsTier(Layer layer) { return layer != Layer::kVolume; }

// For log lines: "volume", "memory tier", "disk tier".
inline constexpr const char* LayerName(Layer layer) {
  return layer == Layer::kVolume ? "volume" : layer == Layer::kMemory ? "memory tier" : "disk tier";
}

}  // namespace detourfs
