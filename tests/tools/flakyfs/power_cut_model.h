// PowerCutModel: flakyfs's power cut. It keeps what a disk without a write
// cache, under a strict reading of POSIX fsync, would still hold if the power
// failed now, and reverts the source tree to exactly that on `powercut`.
// README.md ("Power cuts") states the model for users; this is how it is kept.
//
// While the model is on ("durability strict"):
//  - namespace changes (create, mkdir, mknod, symlink, link, unlink, rmdir,
//    rename with any flags) are recorded in an UndoLog: durable once the
//    parent directories are fsynced, in dependency order. What they remove is
//    not deleted but moved to a grave in the state directory, until the
//    removal is durable (so it can come back, same inode, hard links and all);
//  - at the first change to an inode's content or attributes since it was
//    last durable, they are saved (SavedAttrs, a copy of the content); the
//    inode's fsync drops both, fdatasync the content only. A new inode's
//    durable content is empty and its durable attributes those it was made with;
//  - a sync point (the `sync` command, or an fsync of the root directory,
//    standing in for syncfs(2), which never reaches a FUSE daemon) makes
//    everything durable.
// A power cut undoes the log newest first, writes the saved content and
// attributes back, fails every handle opened before it (epoch()), and starts
// over with the result as the durable state.
//
// Inodes are named by file handle (file_key.h), never by a held fd. The state
// directory is `.flakyfs-powercut` in the source root (renames in and out of
// it must stay on one file system), hidden from the mount.
//
// Thread safety: Lock() takes the model's mutex while the model is on, and
// every change must be made, and reported, while holding the Guard it
// returns: the log's order is then the order the changes happened in. While
// the model is off the Guard holds nothing and every call is a no-op (or, for
// Remove and Rename, the plain syscall).
//
// Calls return 0 or -errno, like the FUSE operations that make them.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detourfs/unique_fd.h"
#include "file_key.h"
#include "saved_inode.h"
#include "undo_log.h"

namespace flakyfs {

class PowerCutModel {
 public:
  static constexpr std::string_view kStateDir = ".flakyfs-powercut";

  class Guard {
   public:
    bool active() const { return lock_.owns_lock(); }

   private:
    friend class PowerCutModel;
    std::unique_lock<std::mutex> lock_;
  };

  // `source_fd` (O_PATH is fine) is the served tree's root; set before any command.
  void set_source(int source_fd) { source_fd_ = source_fd; }

  // Commands "durability [strict [root-sync=on|off] | off]", "sync",
  // "powercut" (README.md). IsCommand() tells which verbs are the model's.
  static bool IsCommand(std::string_view verb);
  std::string Apply(const std::vector<std::string_view>& words, std::string* reply);

  bool enabled() const { return enabled_.load(); }
  // Handles opened before the last power cut carry an older epoch: they died with it.
  uint64_t epoch() const { return epoch_.load(); }
  // The state directory and everything in it, which the mount must not show.
  bool Hidden(std::string_view rel) const;
  // Takes out of st_nlink the links the model keeps (graves, the state
  // directory in the root), so a stat through the mount shows what a client made.
  void AdjustStat(struct stat* st);

  Guard Lock();

  // `rel` (relative to the root) was just made: a new inode, or a new link to
  // an existing one (link(2)).
  void Created(const Guard& g, std::string_view rel, bool new_inode);
  // unlink(2) (`dir` false) or rmdir(2) of `rel`, done undoably.
  int Remove(const Guard& g, std::string_view rel, bool dir);
  // renameat2(2) with any of RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT.
  int Rename(const Guard& g, std::string_view from, std::string_view to, unsigned flags);

  // Before changing the content (write, truncate, fallocate, O_TRUNC) or only
  // the attributes (chmod, chown, utimens, xattrs) of an inode, given by an
  // open fd (`key` caches its FileKey, or is empty) or by path. An error means
  // the change must not be made: it could not be undone.
  int BeforeContent(const Guard& g, int fd, FileKey* key);
  int BeforeContentAt(const Guard& g, std::string_view rel);
  int BeforeAttrs(const Guard& g, int fd, FileKey* key);
  int BeforeAttrsAt(const Guard& g, std::string_view rel);

  // After a successful fsync/fdatasync of a file or a directory.
  void Synced(const Guard& g, int fd, bool datasync, FileKey* key);
  void DirSynced(const Guard& g, int fd, bool datasync);

 private:
  struct Change {
    enum class Kind { kCreated, kLinked, kRemoved, kRenamed, kExchanged };
    Kind kind = Kind::kCreated;
    FileKey dir;  // where the name was made or removed; a rename's source
    std::string name;
    FileKey new_dir;  // a rename's destination
    std::string new_name;
    FileKey object;     // what was made, removed or moved
    std::string grave;  // the removed (or renamed-over) object's place meanwhile
    FileKey grave_key;  // and that object
    bool grave_is_dir = false;
    ino_t grave_ino = 0;
    bool whiteout = false;  // RENAME_WHITEOUT left one at dir/name
  };
  struct Saved {
    std::optional<std::string> content;  // the copy's name in saves/; "" = empty
    std::optional<SavedAttrs> attrs;
  };

  std::string Enable(bool root_sync);
  void Disable();
  std::string StatusJson() const;
  // `durability pending`: each unsynced change with the paths of its keys
  // and of the directories it waits for (a debugging aid).
  std::string PendingJson();
  std::string Cut(std::string* reply);
  void SyncPoint();

  // power_cut_namespace.cc
  int OpenParent(std::string_view rel, std::string* name, detourfs::UniqueFd* dir) const;
  std::string NextGrave() { return "g" + std::to_string(next_grave_++); }
  void Record(const std::vector<std::string>& keys, const std::vector<std::string>& dirs,
              Change change);
  void Retire(const std::vector<UndoLog::Seq>& seqs);
  void DeleteGrave(const Change& change);
  void Undo(const Change& change, std::vector<std::string>* errors);
  void Lost(std::string what);

  // power_cut_model.cc
  int SaveContentOf(const FileKey& key);
  int SaveAttrsOf(const FileKey& key);
  void DropSaved(const FileKey& key, bool content, bool attrs);
  void Restore(const FileKey& key, const Saved& saved, std::vector<std::string>* errors);

  int source_fd_ = -1;
  std::atomic<bool> enabled_{false};
  std::atomic<uint64_t> epoch_{0};

  mutable std::mutex mu_;  // everything below
  bool root_sync_ = true;
  detourfs::UniqueFd root_fd_;  // readable: open_by_handle_at needs one
  detourfs::UniqueFd state_fd_, graves_fd_, saves_fd_;
  FileKey root_key_;
  ino_t root_ino_ = 0;
  UndoLog log_;
  std::map<UndoLog::Seq, Change> changes_;
  std::map<FileKey, Saved> saved_;
  std::map<ino_t, nlink_t> graves_by_ino_;  // non-directories waiting in a grave
  uint64_t next_grave_ = 0;
  uint64_t next_save_ = 0;
  std::vector<std::string> lost_;  // changes made but not recorded: a cut cannot be exact
  uint64_t cuts_ = 0, syncs_ = 0, undone_ = 0, restored_ = 0;
};

}  // namespace flakyfs
