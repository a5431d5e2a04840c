// ChangeRecord: one change the change layer made to a tier, or to the
// volume on behalf of routed content, in the order they were made. This is
// the stream each tier's write-back journal persists (journal/journal_sink.h,
// docs/journal.md); a ChangeSink receives it. Tests observe it through
// `detourfs --record-changes FILE` (JSON lines).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "store/layer.h"

namespace detourfs {

enum class ChangeKind : uint8_t {
  kCreate = 0,     // a file, symlink, device or fifo made
  kMkdir = 1,      // a directory made (also a directory part made for a copy-up)
  kLink = 2,       // a hard link made
  kUnlink = 3,     // a name removed (no whiteout needed)
  kRmdir = 4,      // a directory removed
  kWhiteout = 5,   // a name hidden: a whiteout now stands for the volume's entry
  kOpaque = 6,     // a directory's volume part hidden, whole
  kRename = 7,     // a name moved within one layer (path -> path2)
  kCopyUp = 8,     // a volume file copied to its tier (path)
  kWrite = 9,      // data written (offset, length)
  kTruncate = 10,  // size set (length)
  kSetattr = 11,   // mode, owner or times changed
  kXattr = 12,     // an extended attribute set or removed
  kSpill = 13,     // data moved to a spill store (layer: where it went)
  kMove = 14,      // a file or tree moved between layers (layer and path: where
                   // it went; path2: the path it left)
};

// The values are the journal's on-disk kinds (docs/journal.md): never
// renumbered.
static_assert(static_cast<int>(ChangeKind::kMove) == 14);

const char* ChangeKindName(ChangeKind kind);

struct ChangeRecord {
  uint64_t seq = 0;
  ChangeKind kind = ChangeKind::kCreate;
  Layer layer = Layer::kVolume;
  std::string path;   // relative to the layer's tree
  std::string path2;  // a rename's target; the path a move left
  uint64_t id = 0;    // the file's persistent id (st_ino through the mount)
  uint64_t offset = 0;
  uint64_t length = 0;
};

class ChangeSink {
 public:
  virtual ~ChangeSink() = default;
  // Called in change order; must be quick (the change's locks are held).
  virtual void Append(const ChangeRecord& record) = 0;
};

// A sink writing one JSON object per line to `path` (for tests).
std::unique_ptr<ChangeSink> OpenJsonLinesSink(const std::string& path);

}  // namespace detourfs
