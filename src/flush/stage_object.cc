// Staging one object for an epoch (stage_object.h).
#include "flush/stage_object.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

#include "flush/manifest_apply.h"
#include "store/file_copy.h"
#include "sys/sys.h"

namespace detourfs::flush {
namespace {

// The captured attributes as a stat, for the copy helpers.
struct stat CapturedStat(const CapturedEntry& e) {
  struct stat st {};
  st.st_mode = e.mode;
  st.st_uid = e.uid;
  st.st_gid = e.gid;
  st.st_rdev = e.rdev;
  st.st_size = static_cast<off_t>(e.size);
  st.st_mtim = {e.mtime_sec, e.mtime_nsec};
  st.st_atim = st.st_mtim;
  return st;
}

Result<void> StageDirectory(int source, const struct stat& st, int data_dir, const char* name) {
  DETOURFS_TRY(sys::MkdirAt(data_dir, name, 0700));
  Result<UniqueFd> dir = sys::OpenBeneath(data_dir, name, O_PATH | O_DIRECTORY);
  if (!dir.ok()) return Errno{dir.error()};
  DETOURFS_TRY(sys::ChownFd(dir->get(), st.st_uid, st.st_gid));
  DETOURFS_TRY(sys::ChmodPath(dir->get(), st.st_mode & 07777));
  return CopyXattrs(source, dir->get());
}

Result<void> StageFile(int source, int data, const struct stat& st, int data_dir, const char* name,
                       ManifestStep* step) {
  Result<sys::TmpFile> copy = CopyToTmpfile(source, data, st, data_dir);
  if (!copy.ok()) return Errno{copy.error()};
  // Read back from the volume: the checksum is of what was written there.
  Result<DataDigest> digest = DigestOf(copy->get());
  if (!digest.ok()) return Errno{digest.error()};
  if (digest->size != st.st_size) return Errno{ESTALE};
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  DETOURFS_TRY(sys::Futimens(copy->get(), times));
  DETOURFS_TRY(copy->Link(data_dir, name));
  step->size = static_cast<uint64_t>(digest->size);
  step->hash = digest->hash;
  return {};
}

}  // namespace

Result<void> StageObject(const CapturedEntry& entry, int source, int data, int data_dir,
                         ManifestStep* step) {
  const std::string name = StagedName(step->staged);
  const struct stat st = CapturedStat(entry);
  if (S_ISDIR(st.st_mode)) return StageDirectory(source, st, data_dir, name.c_str());
  if (S_ISREG(st.st_mode)) return StageFile(source, data, st, data_dir, name.c_str(), step);
  return CopySpecial(source, st, data_dir, name.c_str());
}

}  // namespace detourfs::flush
