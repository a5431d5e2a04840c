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
  kCreate,    // a file, symlink, device or fifo made
  kMkdir,     // a directory made (also a directory part made for a copy-up)
  kLink,      // a hard link made
  kUnlink,    // a name removed (no whiteout needed)
  kRmdir,     // a directory removed
  kWhiteout,  // a name hidden: a whiteout now stands for the volume's entry
  kOpaque,    // a directory's volume part hidden, whole
  kRename,    // a name moved within one layer (path -> path2)
  kCopyUp,    // a volume file copied to its tier (path)
  kWrite,     // data written (offset, length)
  kTruncate,  // size set (length)
  kSetattr,   // mode, owner or times changed
  kXattr,     // an extended attribute set or removed
  kSpill,     // data moved to a spill store (layer: where it went)
  kMove,      // a file or tree moved between layers (layer: its new one)
};

const char* ChangeKindName(ChangeKind kind);

struct ChangeRecord {
  uint64_t seq = 0;
  ChangeKind kind = ChangeKind::kCreate;
  Layer layer = Layer::kVolume;
  std::string path;   // relative to the layer's tree
  std::string path2;  // rename and move targets
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
