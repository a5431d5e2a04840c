// The flush's planner (flush_plan.h, docs/flush.md).
#include "flush/flush_plan.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "store/tree_walk.h"
#include "sys/sys.h"

namespace detourfs::flush {
namespace {

std::string_view ParentOf(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

std::string_view LeafOf(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// What the volume holds at one name.
struct VolumeEntry {
  struct stat st {};
  std::string target;  // symlinks
};

// A captured directory on the way down, with what the volume holds in it.
struct Level {
  std::string_view path;
  bool step = false;  // a directory step is in the plan for it
  size_t entry = 0;
  std::unordered_map<std::string, VolumeEntry> volume;  // empty when it is new there
};

// Reads the volume's directory at `path` (beneath `volume`): every entry's
// lstat and, for symlinks, target. ENOENT/ENOTDIR: not a directory there.
Result<std::unordered_map<std::string, VolumeEntry>> ReadVolumeDir(int volume,
                                                                   std::string_view path) {
  Result<UniqueFd> dir = sys::OpenBeneath(volume, std::string(path).c_str(), O_PATH | O_DIRECTORY);
  if (!dir.ok()) return Errno{dir.error()};
  Result<std::vector<WalkItem>> items = ListDir(dir->get());
  if (!items.ok()) return Errno{items.error()};
  std::unordered_map<std::string, VolumeEntry> out;
  for (WalkItem& item : *items) {
    Result<struct stat> st = sys::StatAt(dir->get(), item.name.c_str());
    if (!st.ok()) {
      if (st.error() == ENOENT) continue;  // gone meanwhile
      return Errno{st.error()};
    }
    VolumeEntry e{*st, {}};
    if (S_ISLNK(st->st_mode)) {
      Result<UniqueFd> link = sys::OpenBeneath(dir->get(), item.name.c_str(), O_PATH);
      if (!link.ok()) return Errno{link.error()};
      Result<std::string> target = sys::ReadlinkFd(link->get());
      if (!target.ok()) return Errno{target.error()};
      e.target = std::move(*target);
    }
    out.emplace(std::move(item.name), std::move(e));
  }
  return out;
}

bool SameOwnerMode(const CapturedEntry& e, const struct stat& st) {
  if ((st.st_mode & S_IFMT) != (e.mode & S_IFMT)) return false;
  if (st.st_uid != e.uid || st.st_gid != e.gid) return false;
  return S_ISLNK(st.st_mode) || (st.st_mode & 07777) == (e.mode & 07777);
}

bool SameMtime(const CapturedEntry& e, const struct stat& st) {
  return st.st_mtim.tv_sec == e.mtime_sec && st.st_mtim.tv_nsec == e.mtime_nsec;
}

// Whether the volume's entry already is the captured non-directory.
bool Unchanged(const CapturedEntry& e, const VolumeEntry* v) {
  if (v == nullptr || !SameOwnerMode(e, v->st)) return false;
  if (S_ISREG(e.mode)) {
    // A file with one name must not share its volume inode with another.
    if (e.group == 0 && v->st.st_nlink > 1) return false;
    return e.clean && static_cast<uint64_t>(v->st.st_size) == e.size && SameMtime(e, v->st);
  }
  if (S_ISLNK(e.mode)) return v->target == e.target;
  if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) return v->st.st_rdev == e.rdev;
  return true;  // fifo, socket
}

ManifestStep StepFor(StepKind kind, const CapturedEntry& e) {
  ManifestStep s = MakeStep(kind, e.path);
  s.mode = e.mode;
  s.uid = e.uid;
  s.gid = e.gid;
  s.mtime_sec = e.mtime_sec;
  s.mtime_nsec = e.mtime_nsec;
  if (S_ISREG(e.mode)) s.size = e.size;
  if (S_ISLNK(e.mode)) s.target = e.target;
  return s;
}

// Checks that `tree` is a pre-order tree of valid, distinct paths under a
// directory root, and returns each directory's captured names.
Result<std::unordered_map<std::string_view, std::unordered_set<std::string_view>>> ChildrenOf(
    const CapturedTree& tree) {
  std::unordered_map<std::string_view, std::unordered_set<std::string_view>> children;
  if (tree.entries.empty() || !S_ISDIR(tree.entries[0].mode)) return Errno{EINVAL};
  for (size_t i = 0; i < tree.entries.size(); ++i) {
    const CapturedEntry& e = tree.entries[i];
    if (!ValidStepPath(e.path)) return Errno{EINVAL};
    if (S_ISDIR(e.mode) &&
        !children.emplace(e.path, std::unordered_set<std::string_view>{}).second) {
      return Errno{EINVAL};  // a directory twice
    }
    if (i == 0) continue;
    auto parent = children.find(ParentOf(e.path));
    if (parent == children.end()) return Errno{EINVAL};  // not beneath a captured directory
    if (!parent->second.insert(LeafOf(e.path)).second) return Errno{EINVAL};
  }
  return children;
}

class Planner {
 public:
  Planner(const CapturedTree& tree, int volume, uint64_t* next_staged, Plan* plan)
      : tree_(tree), volume_(volume), next_staged_(next_staged), plan_(plan) {}

  Result<void> Run() {
    Result<std::unordered_map<std::string_view, std::unordered_set<std::string_view>>> children =
        ChildrenOf(tree_);
    if (!children.ok()) return Errno{children.error()};
    children_ = std::move(*children);
    for (size_t i = 0; i < tree_.entries.size(); ++i) {
      const CapturedEntry& e = tree_.entries[i];
      const VolumeEntry* there = nullptr;
      std::optional<VolumeEntry> root;
      if (i == 0) {
        // The root's parent must be a directory on the volume: a plan that
        // makes the root under nothing could never be applied.
        if (const std::string_view parent = ParentOf(e.path); !parent.empty()) {
          Result<UniqueFd> up =
              sys::OpenBeneath(volume_, std::string(parent).c_str(), O_PATH | O_DIRECTORY);
          if (!up.ok()) return Errno{up.error()};
        }
        Result<struct stat> st = StatRoot(e.path);
        if (!st.ok() && st.error() != ENOENT) return Errno{st.error()};
        if (st.ok()) root = VolumeEntry{*st, {}};
        there = root ? &*root : nullptr;
      } else {
        while (!levels_.empty() && levels_.back().path != ParentOf(e.path)) levels_.pop_back();
        if (levels_.empty()) return Errno{EINVAL};  // not in pre-order
        auto it = levels_.back().volume.find(std::string(LeafOf(e.path)));
        there = it == levels_.back().volume.end() ? nullptr : &it->second;
      }
      Result<void> r = S_ISDIR(e.mode) ? Directory(i, there) : NonDirectory(i, there);
      if (!r.ok()) return r;
    }
    return {};
  }

 private:
  Result<struct stat> StatRoot(const std::string& path) {
    Result<UniqueFd> fd = sys::OpenBeneath(volume_, path.c_str(), O_PATH);
    if (!fd.ok()) return Errno{fd.error() == ENOTDIR ? ENOENT : fd.error()};
    return sys::Fstat(fd->get());
  }

  size_t Add(ManifestStep step) {
    plan_->steps.push_back(std::move(step));
    return plan_->steps.size() - 1;
  }

  void Stage(size_t entry, size_t step) {
    if (*next_staged_ == kNoStagedObject) ++*next_staged_;
    plan_->steps[step].staged = (*next_staged_)++;
    plan_->stage.push_back({plan_->steps[step].staged, entry, step});
  }

  // A step for a name in the directory being filled changes that
  // directory's mtime on the volume: it gets a step too (its times are set
  // once its contents are in place).
  void ParentChanges() {
    if (levels_.empty() || levels_.back().step) return;
    levels_.back().step = true;
    Add(StepFor(StepKind::kDirectory, tree_.entries[levels_.back().entry]));
  }

  Result<void> Directory(size_t i, const VolumeEntry* there) {
    const CapturedEntry& e = tree_.entries[i];
    if (i > 0 && (there == nullptr || !S_ISDIR(there->st.st_mode))) ParentChanges();
    Level level{e.path, false, i, {}};
    if (there != nullptr && S_ISDIR(there->st.st_mode)) {
      if (!SameOwnerMode(e, there->st) || !SameMtime(e, there->st)) {
        Add(StepFor(StepKind::kDirectory, e));
        level.step = true;
      }
      Result<std::unordered_map<std::string, VolumeEntry>> listing = ReadVolumeDir(volume_, e.path);
      if (!listing.ok()) return Errno{listing.error()};
      level.volume = std::move(*listing);
      const std::unordered_set<std::string_view>& captured = children_.at(e.path);
      for (const auto& [name, entry] : level.volume) {
        if (captured.count(name) != 0) continue;
        if (!level.step) {
          Add(StepFor(StepKind::kDirectory, e));
          level.step = true;
        }
        Add(MakeStep(StepKind::kRemove, e.path + "/" + name));
      }
      if (!level.step) ++plan_->unchanged;
    } else {
      // A non-directory there is replaced by the directory step itself: a
      // remove step before it would, on a replay, remove the new directory.
      Stage(i, Add(StepFor(StepKind::kDirectory, e)));
      level.step = true;
    }
    levels_.push_back(std::move(level));
    return {};
  }

  Result<void> NonDirectory(size_t i, const VolumeEntry* there) {
    const CapturedEntry& e = tree_.entries[i];
    if (e.group != 0) {
      auto [first, fresh] = groups_.try_emplace(e.group);
      if (!fresh) {
        // Another name of a file placed or kept earlier: a link to it,
        // unless the volume's entry already is that file.
        const bool same = !first->second.placed && there != nullptr &&
                          there->st.st_dev == first->second.dev &&
                          there->st.st_ino == first->second.ino;
        if (same) {
          ++plan_->unchanged;
          return {};
        }
        ParentChanges();
        Add(MakeStep(StepKind::kLink, e.path, tree_.entries[first->second.entry].path));
        return {};
      }
      first->second.entry = i;
      if (there != nullptr) {
        first->second.dev = there->st.st_dev;
        first->second.ino = there->st.st_ino;
      }
    }
    if (Unchanged(e, there)) {
      ++plan_->unchanged;
      return {};
    }
    if (e.group != 0) groups_[e.group].placed = true;
    ParentChanges();
    Stage(i, Add(StepFor(StepKind::kPlace, e)));
    if (S_ISREG(e.mode)) plan_->stage_bytes += e.size;
    return {};
  }

  struct Group {
    size_t entry = 0;  // the first name's entry
    bool placed = false;
    dev_t dev = 0;  // the first name's volume file, when kept
    ino_t ino = 0;
  };

  const CapturedTree& tree_;
  int volume_;
  uint64_t* next_staged_;
  Plan* plan_;
  std::unordered_map<std::string_view, std::unordered_set<std::string_view>> children_;
  std::vector<Level> levels_;
  std::unordered_map<uint64_t, Group> groups_;
};

}  // namespace

Result<void> PlanSubtree(const CapturedTree& tree, int volume, uint64_t* next_staged, Plan* plan) {
  return Planner(tree, volume, next_staged, plan).Run();
}

}  // namespace detourfs::flush
