// FileHandle and DirHandle: open files and directories as the FUSE adapters
// hold them (fuse_file_info::fh).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "detourfs/overlay.h"
#include "inodes/inode_table.h"

namespace detourfs {

// An open regular file: the node (kept alive while open) and a real fd on
// its data. A request using `fd` holds the node's content_mu shared; moving
// the file (copy-up, spill, a move across layers) holds it exclusively while
// it copies the data and points `fd` at the new file, so no read sees a
// half-moved file and no write lands in the old copy. When the new file
// could not be opened then (no fd left, the volume failing), `fd` is null
// and the handle opens the file's data at its next use
// (OverlayImpl::HandleFd): it follows late, never writes to the old copy.
struct FileHandle {
  NodePin node;
  Mutex fd_mu;  // taken under node->content_mu, shared or exclusive
  SharedFd fd GUARDED_BY(fd_mu);
  bool follow_failed GUARDED_BY(fd_mu) = false;  // HandleFd logged its failure once
  int flags = 0;  // the flags `fd` was opened with (O_TRUNC excluded)
  bool writable = false;
};

// One name of a merged directory listing.
struct MergedName {
  std::string name;
  uint64_t ino = 0;  // the persistent id, as st_ino reports it
  mode_t type = 0;   // S_IFMT bits
};

// An open directory. One that lives on one layer is read with getdents64
// (offsets are the filesystem's); one spanning layers is listed from a
// snapshot of its merged names taken when reading starts at offset 0, and
// offsets index the snapshot, so they stay valid however it changes.
struct DirHandle {
  NodePin node;
  Mutex mu;
  UniqueFd fd GUARDED_BY(mu);  // single-layer: the directory, open for reading
  Layer layer GUARDED_BY(mu) = Layer::kVolume;
  bool merged GUARDED_BY(mu) = false;
  bool ids GUARDED_BY(mu) =
      false;  // single-layer: entries' ids must be read (tiers, marked volume dirs)
  std::vector<char> buf GUARDED_BY(mu);
  size_t buf_pos GUARDED_BY(mu) = 0;
  size_t buf_len GUARDED_BY(mu) = 0;
  off_t offset GUARDED_BY(mu) = 0;  // the offset the next buffered entry has
  std::vector<MergedName> names GUARDED_BY(mu);
};

}  // namespace detourfs
