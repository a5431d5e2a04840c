// Applying and verifying a manifest (manifest_apply.h, docs/flush.md).
#include "flush/manifest_apply.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <unordered_set>

#include "detourfs/status.h"
#include "store/file_copy.h"
#include "store/tree_walk.h"
#include "sys/sys.h"

namespace detourfs::flush {
namespace {

// The directory holding `path` (O_PATH, beneath `tree`) and `path`'s last
// component.
Result<UniqueFd> OpenParentOf(int tree, const std::string& path, std::string* leaf) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    *leaf = path;
    return sys::OpenBeneath(tree, ".", O_PATH | O_DIRECTORY);
  }
  *leaf = path.substr(slash + 1);
  return sys::OpenBeneath(tree, path.substr(0, slash).c_str(), O_PATH | O_DIRECTORY);
}

// No such path beneath the tree: missing, a non-directory where a directory
// was expected, or a symlink on the way (never followed).
bool Absent(int err) { return err == ENOENT || err == ENOTDIR || err == ELOOP; }

Result<void> ApplyRemove(const ManifestStep& s, int tree) {
  std::string leaf;
  Result<UniqueFd> parent = OpenParentOf(tree, s.path, &leaf);
  if (!parent.ok()) return Absent(parent.error()) ? Result<void>{} : Errno{parent.error()};
  Result<void> r = RemoveTree(parent->get(), leaf.c_str());
  if (!r.ok() && r.error() != ENOENT) return r;
  return {};
}

// Clears `leaf` in `parent` for a non-directory: a directory there goes
// whole (a non-directory is replaced by the rename itself).
Result<void> ClearForFile(int parent, const std::string& leaf) {
  Result<struct stat> st = sys::StatAt(parent, leaf.c_str());
  if (!st.ok()) return st.error() == ENOENT ? Result<void>{} : Errno{st.error()};
  if (S_ISDIR(st->st_mode)) return RemoveTree(parent, leaf.c_str());
  return {};
}

Result<void> ApplyPlace(const ManifestStep& s, int tree, int data) {
  const std::string staged = StagedName(s.staged);
  Result<struct stat> object = sys::StatAt(data, staged.c_str());
  if (!object.ok()) return object.error() == ENOENT ? Result<void>{} : Errno{object.error()};
  std::string leaf;
  Result<UniqueFd> parent = OpenParentOf(tree, s.path, &leaf);
  if (!parent.ok()) return Errno{parent.error()};
  DETOURFS_TRY(ClearForFile(parent->get(), leaf));
  return sys::RenameAt(data, staged.c_str(), parent->get(), leaf.c_str(), 0);
}

// Gives the directory `fd` the step's owner and mode.
Result<void> SetDirOwnerMode(int fd, const ManifestStep& s) {
  DETOURFS_TRY(sys::ChownFd(fd, s.uid, s.gid));
  return sys::ChmodPath(fd, s.mode & 07777);
}

Result<void> ApplyDirectory(const ManifestStep& s, int tree, int data) {
  const std::string staged = StagedName(s.staged);
  Result<struct stat> object = sys::StatAt(data, staged.c_str());
  if (!object.ok() && object.error() != ENOENT) return Errno{object.error()};
  std::string leaf;
  Result<UniqueFd> parent = OpenParentOf(tree, s.path, &leaf);
  if (!parent.ok()) return Errno{parent.error()};
  Result<struct stat> there = sys::StatAt(parent->get(), leaf.c_str());
  if (!there.ok() && there.error() != ENOENT) return Errno{there.error()};
  if (there.ok() && !S_ISDIR(there->st_mode)) {
    DETOURFS_TRY(sys::UnlinkAt(parent->get(), leaf.c_str(), 0));
    there = Errno{ENOENT};
  }
  if (!there.ok() && object.ok()) {
    return sys::RenameAt(data, staged.c_str(), parent->get(), leaf.c_str(), 0);
  }
  if (!there.ok()) {
    // Placed by an earlier run and lost since (the volume loses fresh
    // entries): made again.
    Result<void> made = sys::MkdirAt(parent->get(), leaf.c_str(), 0700);
    if (!made.ok() && made.error() != EEXIST) return made;
  }
  Result<UniqueFd> dir = sys::OpenBeneath(parent->get(), leaf.c_str(), O_PATH | O_DIRECTORY);
  if (!dir.ok()) return Errno{dir.error()};
  DETOURFS_TRY(SetDirOwnerMode(dir->get(), s));
  if (!object.ok()) return {};
  Result<UniqueFd> from = sys::OpenBeneath(data, staged.c_str(), O_PATH | O_DIRECTORY);
  if (!from.ok()) return Errno{from.error()};
  DETOURFS_TRY(CopyXattrs(from->get(), dir->get()));
  return sys::UnlinkAt(data, staged.c_str(), AT_REMOVEDIR);
}

Result<void> ApplyLink(const ManifestStep& s, size_t index, int tree, int data) {
  std::string first_leaf;
  Result<UniqueFd> first_parent = OpenParentOf(tree, s.target, &first_leaf);
  if (!first_parent.ok()) return Errno{first_parent.error()};
  Result<struct stat> first = sys::StatAt(first_parent->get(), first_leaf.c_str());
  if (!first.ok()) return Errno{first.error()};
  std::string leaf;
  Result<UniqueFd> parent = OpenParentOf(tree, s.path, &leaf);
  if (!parent.ok()) return Errno{parent.error()};
  Result<struct stat> there = sys::StatAt(parent->get(), leaf.c_str());
  if (there.ok() && there->st_dev == first->st_dev && there->st_ino == first->st_ino) return {};
  // Made in data/ and renamed into place: what was at the name is replaced
  // in one step.
  const std::string tmp = "link-" + StagedName(index);
  Result<void> stale = sys::UnlinkAt(data, tmp.c_str(), 0);
  if (!stale.ok() && stale.error() != ENOENT) return stale;
  DETOURFS_TRY(sys::LinkAt(first_parent->get(), first_leaf.c_str(), data, tmp.c_str()));
  DETOURFS_TRY(ClearForFile(parent->get(), leaf));
  return sys::RenameAt(data, tmp.c_str(), parent->get(), leaf.c_str(), 0);
}

Result<void> SetDirTimes(const ManifestStep& s, int tree) {
  std::string leaf;
  Result<UniqueFd> parent = OpenParentOf(tree, s.path, &leaf);
  if (!parent.ok()) return Errno{parent.error()};
  const struct timespec times[2] = {{0, UTIME_OMIT}, {s.mtime_sec, s.mtime_nsec}};
  return sys::UtimensAt(parent->get(), leaf.c_str(), times);
}

std::string Describe(const char* what, uint64_t got, uint64_t want) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%s %" PRIu64 ", expected %" PRIu64, what, got, want);
  return buf;
}

// What is wrong with `st` (the object at a place or directory step's
// path), or "".
std::string CheckAttrs(const ManifestStep& s, const struct stat& st) {
  if ((st.st_mode & S_IFMT) != (s.mode & S_IFMT)) return "another type";
  if (st.st_uid != s.uid || st.st_gid != s.gid) return "another owner";
  if (!S_ISLNK(st.st_mode) && (st.st_mode & 07777) != (s.mode & 07777)) {
    return Describe("mode", st.st_mode & 07777, s.mode & 07777);
  }
  return "";
}

// What is wrong with the object placed at `s.path`, or "".
Result<std::string> CheckPlaced(const ManifestStep& s, int tree) {
  Result<UniqueFd> fd = sys::OpenBeneath(tree, s.path.c_str(), O_PATH);
  if (!fd.ok()) return Absent(fd.error()) ? Result<std::string>("missing") : Errno{fd.error()};
  Result<struct stat> st = sys::Fstat(fd->get());
  if (!st.ok()) return Errno{st.error()};
  if (std::string wrong = CheckAttrs(s, *st); !wrong.empty()) return wrong;
  if (S_ISLNK(st->st_mode)) {
    Result<std::string> target = sys::ReadlinkFd(fd->get());
    if (!target.ok()) return Errno{target.error()};
    return std::string(*target == s.target ? "" : "another symlink target");
  }
  if (!S_ISREG(st->st_mode)) return std::string();
  if (static_cast<uint64_t>(st->st_size) != s.size) {
    return Describe("size", static_cast<uint64_t>(st->st_size), s.size);
  }
  Result<UniqueFd> data = sys::Reopen(fd->get(), O_RDONLY | O_NOATIME);
  if (!data.ok()) return Errno{data.error()};
  // Read from the volume, not the page cache, where the filesystem allows.
  (void)sys::Fadvise(data->get(), 0, 0, POSIX_FADV_DONTNEED);
  Result<DataDigest> digest = DigestOf(data->get());
  if (!digest.ok()) return "unreadable (" + std::string(ErrnoText(digest.error())) + ")";
  if (static_cast<uint64_t>(digest->size) != s.size) return std::string("size changed while read");
  return std::string(digest->hash == s.hash ? "" : "content differs");
}

Result<std::string> CheckStep(const ManifestStep& s, int tree) {
  switch (s.kind) {
    case StepKind::kRemove: {
      Result<UniqueFd> fd = sys::OpenBeneath(tree, s.path.c_str(), O_PATH);
      if (fd.ok()) return std::string("still present");
      return Absent(fd.error()) ? Result<std::string>("") : Errno{fd.error()};
    }
    case StepKind::kPlace:
      return CheckPlaced(s, tree);
    case StepKind::kDirectory: {
      Result<UniqueFd> fd = sys::OpenBeneath(tree, s.path.c_str(), O_PATH);
      if (!fd.ok()) return Absent(fd.error()) ? Result<std::string>("missing") : Errno{fd.error()};
      Result<struct stat> st = sys::Fstat(fd->get());
      if (!st.ok()) return Errno{st.error()};
      return CheckAttrs(s, *st);
    }
    case StepKind::kLink: {
      Result<UniqueFd> fd = sys::OpenBeneath(tree, s.path.c_str(), O_PATH);
      Result<UniqueFd> first = sys::OpenBeneath(tree, s.target.c_str(), O_PATH);
      if (!fd.ok()) return Absent(fd.error()) ? Result<std::string>("missing") : Errno{fd.error()};
      if (!first.ok()) return std::string("its first name is missing");
      Result<struct stat> a = sys::Fstat(fd->get());
      Result<struct stat> b = sys::Fstat(first->get());
      if (!a.ok() || !b.ok()) return Errno{a.ok() ? b.error() : a.error()};
      const bool same = a->st_dev == b->st_dev && a->st_ino == b->st_ino;
      return same ? "" : "not a link to " + s.target;
    }
  }
  return std::string("unknown step");
}

}  // namespace

std::string StagedName(uint64_t number) {
  char name[17];
  std::snprintf(name, sizeof(name), "%016" PRIx64, number);
  return name;
}

Result<void> ApplyManifest(const Manifest& manifest, int tree, int data, size_t* failed_step) {
  for (size_t i = 0; i < manifest.steps.size(); ++i) {
    const ManifestStep& s = manifest.steps[i];
    Result<void> r;
    switch (s.kind) {
      case StepKind::kRemove:
        r = ApplyRemove(s, tree);
        break;
      case StepKind::kPlace:
        r = ApplyPlace(s, tree, data);
        break;
      case StepKind::kDirectory:
        r = ApplyDirectory(s, tree, data);
        break;
      case StepKind::kLink:
        r = ApplyLink(s, i, tree, data);
        break;
    }
    if (!r.ok()) {
      if (failed_step != nullptr) *failed_step = i;
      return r;
    }
  }
  // Directory times last, the deepest (made last) first: making their
  // contents changed them.
  for (size_t i = manifest.steps.size(); i-- > 0;) {
    const ManifestStep& s = manifest.steps[i];
    if (s.kind != StepKind::kDirectory) continue;
    if (Result<void> r = SetDirTimes(s, tree); !r.ok()) {
      if (failed_step != nullptr) *failed_step = i;
      return r;
    }
  }
  return {};
}

Result<std::vector<VerifyFinding>> VerifyManifest(const Manifest& manifest, int tree) {
  // A remove is checked only when no later step makes its name again.
  std::unordered_set<std::string_view> made;
  std::vector<bool> remade(manifest.steps.size(), false);
  for (size_t i = manifest.steps.size(); i-- > 0;) {
    const ManifestStep& s = manifest.steps[i];
    if (s.kind == StepKind::kRemove) {
      remade[i] = made.count(s.path) != 0;
    } else {
      made.insert(s.path);
    }
  }
  std::vector<VerifyFinding> findings;
  for (size_t i = 0; i < manifest.steps.size(); ++i) {
    if (remade[i]) continue;
    Result<std::string> wrong = CheckStep(manifest.steps[i], tree);
    if (!wrong.ok()) return Errno{wrong.error()};
    if (!wrong->empty()) findings.push_back({i, manifest.steps[i].path, std::move(*wrong)});
  }
  return findings;
}

}  // namespace detourfs::flush
