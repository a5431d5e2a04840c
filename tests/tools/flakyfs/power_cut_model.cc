// PowerCutModel (power_cut_model.h): its commands, the content and attribute
// saves, sync points and the cut itself. Namespace changes are in
// power_cut_namespace.cc.
#include "power_cut_model.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "dir_util.h"

namespace flakyfs {

using detourfs::UniqueFd;

bool PowerCutModel::IsCommand(std::string_view verb) {
  return verb == "durability" || verb == "sync" || verb == "powercut";
}

std::string PowerCutModel::Apply(const std::vector<std::string_view>& words, std::string* reply) {
  const std::string_view verb = words.at(0);
  if (verb == "durability") {
    if (words.size() == 1) {
      *reply = StatusJson();
      return {};
    }
    if (words[1] == "pending" && words.size() == 2) {
      *reply = PendingJson();
      return {};
    }
    if (words[1] == "off" && words.size() == 2) {
      Disable();
      return {};
    }
    if (words[1] == "strict" && words.size() <= 3) {
      bool root_sync = true;
      if (words.size() == 3) {
        if (words[2] == "root-sync=off") {
          root_sync = false;
        } else if (words[2] != "root-sync=on") {
          return "usage: durability strict [root-sync=on|off]";
        }
      }
      return Enable(root_sync);
    }
    return "usage: durability [strict [root-sync=on|off] | off]";
  }
  if (words.size() != 1) return "usage: " + std::string(verb);
  if (!enabled()) return std::string(verb) + ": durability is off (durability strict)";
  if (verb == "sync") {
    std::lock_guard lock(mu_);
    SyncPoint();
    return {};
  }
  return Cut(reply);
}

std::string PowerCutModel::Enable(bool root_sync) {
  std::lock_guard lock(mu_);
  root_sync_ = root_sync;
  if (enabled()) return {};
  auto fail = [&](const std::string& what) {
    std::string why = what + ": " + std::strerror(errno);
    state_fd_.Reset();
    graves_fd_.Reset();
    saves_fd_.Reset();
    root_fd_.Reset();
    return why;
  };
  root_fd_.Reset(openat(source_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd_.valid()) return fail("cannot open the source");
  struct stat st {};
  if (fstat(root_fd_.get(), &st) != 0) return fail("cannot stat the source");
  root_ino_ = st.st_ino;
  if (int r = KeyAt(root_fd_.get(), "", &root_key_); r != 0) {
    errno = -r;
    return fail("the source file system gives no file handles");
  }
  if (int fd = OpenByKey(root_fd_.get(), root_key_, O_PATH); fd < 0) {
    errno = -fd;
    return fail("cannot open by file handle (needs CAP_DAC_READ_SEARCH)");
  } else {
    close(fd);
  }
  const std::string state(kStateDir);
  RemoveTree(root_fd_.get(), state);  // left by a flakyfs that was killed
  if (mkdirat(root_fd_.get(), state.c_str(), 0700) != 0) return fail("cannot make " + state);
  state_fd_.Reset(openat(root_fd_.get(), state.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!state_fd_.valid()) return fail("cannot open " + state);
  if (mkdirat(state_fd_.get(), "graves", 0700) != 0 || mkdirat(state_fd_.get(), "saves", 0700)) {
    return fail("cannot fill " + state);
  }
  graves_fd_.Reset(openat(state_fd_.get(), "graves", O_PATH | O_DIRECTORY | O_CLOEXEC));
  saves_fd_.Reset(openat(state_fd_.get(), "saves", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!graves_fd_.valid() || !saves_fd_.valid()) return fail("cannot open " + state);
  lost_.clear();
  enabled_ = true;
  return {};
}

// Everything is kept as it is, as after a clean shutdown.
void PowerCutModel::Disable() {
  std::lock_guard lock(mu_);
  if (!enabled()) return;
  SyncPoint();
  enabled_ = false;
  graves_fd_.Reset();
  saves_fd_.Reset();
  state_fd_.Reset();
  RemoveTree(root_fd_.get(), std::string(kStateDir));
  root_fd_.Reset();
}

std::string PowerCutModel::PendingJson() {
  std::lock_guard lock(mu_);
  auto path = [&](const FileKey& key) -> std::string {
    UniqueFd fd(OpenByKey(root_fd_.get(), key, O_PATH));
    if (!fd.valid()) return "(gone)";
    char buf[4096];
    const std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
    const ssize_t n = readlink(proc.c_str(), buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "(unknown)";
  };
  nlohmann::json out = nlohmann::json::array();
  log_.ForEachPending([&](UndoLog::Seq seq, const std::vector<std::string>& keys,
                          const std::set<std::string>& dirs) {
    nlohmann::json e;
    e["seq"] = seq;
    for (const std::string& k : keys) e["keys"].push_back(path(k));
    for (const std::string& d : dirs) e["waits_for"].push_back(path(d));
    out.push_back(e);
  });
  return out.dump();
}

std::string PowerCutModel::StatusJson() const {
  std::lock_guard lock(mu_);
  nlohmann::json j;
  j["mode"] = enabled() ? "strict" : "off";
  j["root_sync"] = root_sync_;
  j["unsynced_changes"] = log_.size();
  size_t contents = 0, attrs = 0;
  for (const auto& [key, s] : saved_) {
    contents += s.content ? 1 : 0;
    attrs += s.attrs ? 1 : 0;
  }
  j["saved_contents"] = contents;
  j["saved_attrs"] = attrs;
  size_t graves = 0;
  for (const auto& [seq, c] : changes_) graves += c.grave.empty() ? 0 : 1;
  j["graves"] = graves;
  j["lost"] = lost_;
  j["syncs"] = syncs_;
  j["cuts"] = cuts_;
  j["undone"] = undone_;
  j["restored"] = restored_;
  return j.dump();
}

bool PowerCutModel::Hidden(std::string_view rel) const {
  if (!enabled() || rel.substr(0, kStateDir.size()) != kStateDir) return false;
  return rel.size() == kStateDir.size() || rel[kStateDir.size()] == '/';
}

void PowerCutModel::AdjustStat(struct stat* st) {
  if (!enabled()) return;
  std::lock_guard lock(mu_);
  if (S_ISDIR(st->st_mode)) {
    if (st->st_ino == root_ino_ && st->st_nlink > 2) --st->st_nlink;  // the state directory
    return;
  }
  auto it = graves_by_ino_.find(st->st_ino);
  if (it != graves_by_ino_.end()) st->st_nlink -= std::min(st->st_nlink, it->second);
}

PowerCutModel::Guard PowerCutModel::Lock() {
  Guard g;
  if (!enabled()) return g;
  g.lock_ = std::unique_lock(mu_);
  if (!enabled()) g.lock_.unlock();  // turned off while we waited
  return g;
}

int PowerCutModel::SaveContentOf(const FileKey& key) {
  Saved& saved = saved_[key];
  if (saved.content) return 0;
  UniqueFd fd(OpenByKey(root_fd_.get(), key, O_RDONLY));
  if (!fd.valid()) return fd.get();
  std::string name = "c" + std::to_string(next_save_++);
  if (int r = flakyfs::SaveContent(fd.get(), saves_fd_.get(), name); r != 0) return r;
  saved.content = std::move(name);
  return 0;
}

int PowerCutModel::SaveAttrsOf(const FileKey& key) {
  Saved& saved = saved_[key];
  if (saved.attrs) return 0;
  UniqueFd fd(OpenByKey(root_fd_.get(), key, O_PATH));
  if (!fd.valid()) return fd.get();
  SavedAttrs attrs;
  if (int r = flakyfs::SaveAttrs(fd.get(), &attrs); r != 0) return r;
  saved.attrs = std::move(attrs);
  return 0;
}

void PowerCutModel::DropSaved(const FileKey& key, bool content, bool attrs) {
  auto it = saved_.find(key);
  if (it == saved_.end()) return;
  if (content && it->second.content) {
    if (!it->second.content->empty()) unlinkat(saves_fd_.get(), it->second.content->c_str(), 0);
    it->second.content.reset();
  }
  if (attrs) it->second.attrs.reset();
  if (!it->second.content && !it->second.attrs) saved_.erase(it);
}

int PowerCutModel::BeforeContent(const Guard& g, int fd, FileKey* key) {
  if (!g.active()) return 0;
  if (key->empty()) {
    if (int r = KeyOf(fd, key); r != 0) return r;
  }
  // A write changes the times too: both go back unless the file is fsynced.
  if (int r = SaveContentOf(*key); r != 0) return r;
  return SaveAttrsOf(*key);
}

int PowerCutModel::BeforeContentAt(const Guard& g, std::string_view rel) {
  if (!g.active()) return 0;
  struct stat st {};
  const std::string name = rel.empty() ? "." : std::string(rel);
  if (fstatat(root_fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? 0 : -errno;  // the change itself will fail
  }
  if (!S_ISREG(st.st_mode)) return 0;
  FileKey key;
  if (int r = KeyAt(root_fd_.get(), std::string(rel), &key); r != 0) return r;
  return BeforeContent(g, -1, &key);
}

int PowerCutModel::BeforeAttrs(const Guard& g, int fd, FileKey* key) {
  if (!g.active()) return 0;
  if (key->empty()) {
    if (int r = KeyOf(fd, key); r != 0) return r;
  }
  return SaveAttrsOf(*key);
}

int PowerCutModel::BeforeAttrsAt(const Guard& g, std::string_view rel) {
  if (!g.active()) return 0;
  FileKey key;
  if (int r = KeyAt(root_fd_.get(), std::string(rel), &key); r != 0) return r == -ENOENT ? 0 : r;
  return SaveAttrsOf(key);
}

void PowerCutModel::Synced(const Guard& g, int fd, bool datasync, FileKey* key) {
  if (!g.active()) return;
  if (key->empty() && KeyOf(fd, key) != 0) return;
  DropSaved(*key, true, !datasync);
}

void PowerCutModel::DirSynced(const Guard& g, int fd, bool datasync) {
  if (!g.active()) return;
  FileKey key;
  if (KeyOf(fd, &key) != 0) return;
  if (key == root_key_ && root_sync_) return SyncPoint();
  Retire(log_.DirSynced(key));
  if (!datasync) DropSaved(key, false, true);
  // Symlinks and special files cannot be fsynced: their attributes and
  // xattrs become durable with their directory (as a journaling filesystem
  // commits them with its fsync).
  const int own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // not the caller's offset
  DIR* dir = own >= 0 ? fdopendir(own) : nullptr;
  if (dir == nullptr) {
    if (own >= 0) close(own);
    return;
  }
  while (const dirent* e = readdir(dir)) {
    if (e->d_type == DT_REG || e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) continue;
    FileKey child;
    if (KeyAt(fd, e->d_name, &child) == 0) DropSaved(child, false, true);
  }
  closedir(dir);
}

void PowerCutModel::SyncPoint() {
  Retire(log_.SyncAll());
  changes_.clear();
  for (auto it = saved_.begin(); it != saved_.end();) DropSaved((it++)->first, true, true);
  ++syncs_;
}

void PowerCutModel::Restore(const FileKey& key, const Saved& saved,
                            std::vector<std::string>* errors) {
  auto fail = [&](const char* what, int err) {
    // An inode gone for good (its creation undone, its removal durable) needs nothing.
    if (err != -ESTALE) errors->push_back(std::string(what) + ": " + std::strerror(-err));
  };
  if (saved.content) {
    UniqueFd fd(OpenByKey(root_fd_.get(), key, O_WRONLY));
    if (!fd.valid()) {
      fail("restore content: open", fd.get());
    } else if (int r = RestoreContent(fd.get(), saves_fd_.get(), *saved.content); r != 0) {
      fail("restore content", r);
    }
  }
  if (saved.attrs) {
    UniqueFd fd(OpenByKey(root_fd_.get(), key, O_PATH));
    if (!fd.valid()) {
      fail("restore attributes: open", fd.get());
    } else if (int r = RestoreAttrs(fd.get(), *saved.attrs); r != 0) {
      fail("restore attributes", r);
    }
  }
  ++restored_;
}

std::string PowerCutModel::Cut(std::string* reply) {
  std::lock_guard lock(mu_);
  ++epoch_;
  std::vector<std::string> errors = lost_;
  lost_.clear();
  uint64_t undone = 0;
  std::set<FileKey> unmade;
  for (UndoLog::Seq seq : log_.TakeForUndo()) {
    const Change& change = changes_.at(seq);
    Undo(change, &errors);
    if (change.kind == Change::Kind::kCreated) unmade.insert(change.object);
    ++undone;
  }
  changes_.clear();
  undone_ += undone;
  const uint64_t restored_before = restored_;
  for (const auto& [key, saved] : saved_) {
    // An inode whose creation was just undone is gone (or going: opening it by
    // handle while the kernel frees it can fail in odd ways): nothing to restore.
    if (unmade.count(key) == 0) Restore(key, saved, &errors);
  }
  for (auto it = saved_.begin(); it != saved_.end();) DropSaved((it++)->first, true, true);
  graves_by_ino_.clear();
  // Every removal left was undone: a grave still full is a bug in the model.
  if (CheckEmpty(graves_fd_.get(), ".") != 0) {
    errors.emplace_back("graves left after the cut");
    RemoveTree(state_fd_.get(), "graves");
    mkdirat(state_fd_.get(), "graves", 0700);
    graves_fd_.Reset(openat(state_fd_.get(), "graves", O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  ++cuts_;
  nlohmann::json j;
  j["undone"] = undone;
  j["restored"] = restored_ - restored_before;
  j["errors"] = errors;
  *reply = j.dump();
  if (!errors.empty()) return "powercut: the tree may not be exact: " + j.dump();
  return {};
}

}  // namespace flakyfs
