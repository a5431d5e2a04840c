// PowerCutModel's namespace changes (power_cut_model.h): how each is made so
// that it can be undone, recorded, retired once durable, and undone.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "dir_util.h"
#include "power_cut_model.h"

namespace flakyfs {
namespace {

using detourfs::UniqueFd;

std::string Describe(const char* what, const std::string& name, int err) {
  return std::string(what) + " '" + name + "': " + std::strerror(-err);
}

}  // namespace

int PowerCutModel::OpenParent(std::string_view rel, std::string* name, UniqueFd* dir) const {
  size_t slash = rel.rfind('/');
  std::string parent = slash == std::string_view::npos ? "." : std::string(rel.substr(0, slash));
  *name = std::string(slash == std::string_view::npos ? rel : rel.substr(slash + 1));
  if (name->empty()) return -EBUSY;  // the root itself
  dir->Reset(openat(root_fd_.get(), parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  return dir->valid() ? 0 : -errno;
}

void PowerCutModel::Lost(std::string what) {
  std::fprintf(stderr, "flakyfs: power-cut model lost track: %s\n", what.c_str());
  lost_.push_back(std::move(what));
}

void PowerCutModel::Record(const std::vector<std::string>& keys,
                           const std::vector<std::string>& dirs, Change change) {
  changes_[log_.Add(keys, dirs)] = std::move(change);
}

void PowerCutModel::Retire(const std::vector<UndoLog::Seq>& seqs) {
  for (UndoLog::Seq seq : seqs) {
    auto it = changes_.find(seq);
    if (it == changes_.end()) continue;
    if (!it->second.grave.empty()) DeleteGrave(it->second);
    changes_.erase(it);
  }
}

// The removal is durable: the removed object goes for good.
void PowerCutModel::DeleteGrave(const Change& change) {
  struct stat st {};
  if (fstatat(graves_fd_.get(), change.grave.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  RemoveTree(graves_fd_.get(), change.grave);
  if (!change.grave_is_dir) {
    auto it = graves_by_ino_.find(change.grave_ino);
    if (it != graves_by_ino_.end() && --it->second == 0) graves_by_ino_.erase(it);
  }
  if (change.grave_is_dir || st.st_nlink <= 1) DropSaved(change.grave_key, true, true);
}

void PowerCutModel::Created(const Guard& g, std::string_view rel, bool new_inode) {
  if (!g.active()) return;
  std::string name;
  UniqueFd dir;
  FileKey dir_key, key;
  int r = OpenParent(rel, &name, &dir);
  if (r == 0) r = KeyAt(dir.get(), "", &dir_key);
  if (r == 0) r = KeyAt(dir.get(), name, &key);
  if (r != 0) return Lost(Describe("creation of", std::string(rel), r));
  Change c;
  c.kind = new_inode ? Change::Kind::kCreated : Change::Kind::kLinked;
  c.dir = dir_key;
  c.name = name;
  c.object = key;
  Record({dir_key, key}, {dir_key}, std::move(c));
  if (!new_inode) return;
  // Durable content of a new inode: none; durable attributes: those it has now.
  Saved& saved = saved_[key];
  struct stat st {};
  if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
    saved.content = "";
  }
  UniqueFd fd(openat(dir.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  SavedAttrs attrs;
  r = fd.valid() ? SaveAttrs(fd.get(), &attrs) : -errno;
  if (r != 0) return Lost(Describe("attributes of new", std::string(rel), r));
  saved.attrs = std::move(attrs);
}

int PowerCutModel::Remove(const Guard& g, std::string_view rel, bool dir) {
  std::string name;
  UniqueFd parent;
  if (!g.active()) {
    return unlinkat(source_fd_, std::string(rel).c_str(), dir ? AT_REMOVEDIR : 0) == 0 ? 0 : -errno;
  }
  if (int r = OpenParent(rel, &name, &parent); r != 0) return r;
  struct stat st {};
  if (fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
  if (!dir && S_ISDIR(st.st_mode)) return -EISDIR;
  if (dir && !S_ISDIR(st.st_mode)) return -ENOTDIR;
  if (dir) {
    if (int r = CheckEmpty(parent.get(), name); r != 0) return r;
  }
  FileKey parent_key, key;
  if (int r = KeyAt(parent.get(), "", &parent_key); r != 0) return r;
  if (int r = KeyAt(parent.get(), name, &key); r != 0) return r;
  const std::string grave = NextGrave();
  if (renameat2(parent.get(), name.c_str(), graves_fd_.get(), grave.c_str(), RENAME_NOREPLACE) !=
      0) {
    return -errno;
  }
  // A removed directory can no longer be fsynced: what waited for it is settled.
  if (dir) Retire(log_.DirSynced(key));
  Change c;
  c.kind = Change::Kind::kRemoved;
  c.dir = parent_key;
  c.name = name;
  c.object = key;
  c.grave = grave;
  c.grave_key = key;
  c.grave_is_dir = dir;
  c.grave_ino = st.st_ino;
  Record({parent_key, key}, {parent_key}, std::move(c));
  if (!dir) ++graves_by_ino_[st.st_ino];
  return 0;
}

int PowerCutModel::Rename(const Guard& g, std::string_view from, std::string_view to,
                          unsigned flags) {
  if (!g.active()) {
    return renameat2(source_fd_, std::string(from).c_str(), source_fd_, std::string(to).c_str(),
                     flags) == 0
               ? 0
               : -errno;
  }
  std::string name, new_name;
  UniqueFd dir, new_dir;
  if (int r = OpenParent(from, &name, &dir); r != 0) return r;
  if (int r = OpenParent(to, &new_name, &new_dir); r != 0) return r;
  FileKey dir_key, new_dir_key, key, other_key;
  if (int r = KeyAt(dir.get(), "", &dir_key); r != 0) return r;
  if (int r = KeyAt(new_dir.get(), "", &new_dir_key); r != 0) return r;
  Change c;
  c.dir = dir_key;
  c.name = name;
  c.new_dir = new_dir_key;
  c.new_name = new_name;

  if (flags & RENAME_EXCHANGE) {
    if (renameat2(dir.get(), name.c_str(), new_dir.get(), new_name.c_str(), flags) != 0) {
      return -errno;
    }
    c.kind = Change::Kind::kExchanged;
    int r = KeyAt(new_dir.get(), new_name, &key);
    if (r == 0) r = KeyAt(dir.get(), name, &other_key);
    if (r != 0) {
      Lost(Describe("exchange with", std::string(to), r));
      return 0;
    }
    c.object = key;
    Record({dir_key, new_dir_key, key, other_key}, {dir_key, new_dir_key}, std::move(c));
    return 0;
  }

  struct stat st {
  }, target{};
  if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
  const bool replaces = fstatat(new_dir.get(), new_name.c_str(), &target, AT_SYMLINK_NOFOLLOW) == 0;
  if (!replaces && errno != ENOENT) return -errno;
  if (int r = KeyAt(dir.get(), name, &key); r != 0) return r;
  std::vector<std::string> keys = {dir_key, new_dir_key, key};
  if (replaces) {
    if (flags & RENAME_NOREPLACE) return -EEXIST;
    // Two names of one file: rename(2) does nothing and succeeds.
    if (st.st_ino == target.st_ino && st.st_dev == target.st_dev) return 0;
    // What renameat2 would refuse, checked before the target is moved aside.
    if (S_ISDIR(st.st_mode) && !S_ISDIR(target.st_mode)) return -ENOTDIR;
    if (!S_ISDIR(st.st_mode) && S_ISDIR(target.st_mode)) return -EISDIR;
    if (S_ISDIR(target.st_mode)) {
      if (int r = CheckEmpty(new_dir.get(), new_name); r != 0) return r;
    }
    if (int r = KeyAt(new_dir.get(), new_name, &other_key); r != 0) return r;
    keys.push_back(other_key);
    // The kernel holds both parents locked for the whole request, so no
    // lookup through the mount sees the moment between the two renames.
    c.grave = NextGrave();
    c.grave_key = other_key;
    c.grave_is_dir = S_ISDIR(target.st_mode);
    c.grave_ino = target.st_ino;
    if (renameat2(new_dir.get(), new_name.c_str(), graves_fd_.get(), c.grave.c_str(),
                  RENAME_NOREPLACE) != 0) {
      return -errno;
    }
  }
  if (renameat2(dir.get(), name.c_str(), new_dir.get(), new_name.c_str(),
                (flags & RENAME_WHITEOUT) | RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (replaces) {
      (void)renameat2(graves_fd_.get(), c.grave.c_str(), new_dir.get(), new_name.c_str(),
                      RENAME_NOREPLACE);
    }
    return -err;
  }
  c.kind = Change::Kind::kRenamed;
  c.object = key;
  c.whiteout = (flags & RENAME_WHITEOUT) != 0;
  if (replaces && c.grave_is_dir) Retire(log_.DirSynced(other_key));
  if (replaces && !c.grave_is_dir) ++graves_by_ino_[target.st_ino];
  Record(keys, {dir_key, new_dir_key}, std::move(c));
  return 0;
}

void PowerCutModel::Undo(const Change& c, std::vector<std::string>* errors) {
  auto fail = [&](const char* what, const std::string& name, int err) {
    errors->push_back(Describe(what, name, err));
  };
  UniqueFd dir(OpenByKey(root_fd_.get(), c.dir, O_PATH | O_DIRECTORY));
  if (!dir.valid()) return fail("undo: the directory of", c.name, dir.get());
  UniqueFd new_dir;
  if (c.kind == Change::Kind::kRenamed || c.kind == Change::Kind::kExchanged) {
    new_dir.Reset(OpenByKey(root_fd_.get(), c.new_dir, O_PATH | O_DIRECTORY));
    if (!new_dir.valid()) return fail("undo: the directory of", c.new_name, new_dir.get());
  }
  // Each change is undone with its inodes exactly as it left them (undo_log.h);
  // a different object under the name would be a bug in this model.
  auto expect = [&](int dirfd, const std::string& name) {
    FileKey key;
    int r = KeyAt(dirfd, name, &key);
    if (r == 0 && key != c.object) r = -ESTALE;
    if (r != 0) fail("undo: expected object at", name, r);
    return r == 0;
  };
  switch (c.kind) {
    case Change::Kind::kCreated:
    case Change::Kind::kLinked: {
      if (!expect(dir.get(), c.name)) return;
      struct stat st {};
      if (fstatat(dir.get(), c.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return fail("undo: stat", c.name, -errno);
      }
      if (unlinkat(dir.get(), c.name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0) {
        fail("undo: remove", c.name, -errno);
        RemoveTree(dir.get(), c.name);
      }
      return;
    }
    case Change::Kind::kRemoved:
      if (renameat2(graves_fd_.get(), c.grave.c_str(), dir.get(), c.name.c_str(),
                    RENAME_NOREPLACE) != 0) {
        fail("undo: bring back", c.name, -errno);
      }
      return;
    case Change::Kind::kRenamed:
      if (!expect(new_dir.get(), c.new_name)) return;
      if (c.whiteout && unlinkat(dir.get(), c.name.c_str(), 0) != 0) {
        return fail("undo: remove the whiteout", c.name, -errno);
      }
      if (renameat2(new_dir.get(), c.new_name.c_str(), dir.get(), c.name.c_str(),
                    RENAME_NOREPLACE) != 0) {
        return fail("undo: rename back", c.new_name, -errno);
      }
      if (!c.grave.empty() && renameat2(graves_fd_.get(), c.grave.c_str(), new_dir.get(),
                                        c.new_name.c_str(), RENAME_NOREPLACE) != 0) {
        fail("undo: bring back", c.new_name, -errno);
      }
      return;
    case Change::Kind::kExchanged:
      if (!expect(new_dir.get(), c.new_name)) return;
      if (renameat2(dir.get(), c.name.c_str(), new_dir.get(), c.new_name.c_str(),
                    RENAME_EXCHANGE) != 0) {
        fail("undo: exchange back", c.name, -errno);
      }
      return;
  }
}

}  // namespace flakyfs
