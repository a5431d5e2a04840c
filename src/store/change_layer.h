// ChangeLayer: the one component through which detourfs changes a tier, or
// the volume on behalf of routed content (docs/architecture.md, "Change
// layer"). The overlay decides what a request means for each layer; this
// makes each change, so that:
//  - a change is atomic: what is not made by one syscall in place is built
//    aside in the layer's work/ (same filesystem, never shown) and published
//    with one rename (RENAME_NOREPLACE, RENAME_EXCHANGE or RENAME_WHITEOUT);
//    a change that must touch several places visibly runs as an Intent whose
//    record makes it complete after a crash (intent_log.h);
//  - every change is recorded, in order, to a ChangeSink (the journal's
//    hook) with its path and the file's persistent id;
//  - tests can kill the daemon or fail a step between any two steps
//    (failpoints.h);
//  - what must survive a power loss is synced, in batches (see Durability
//    in docs/overlay.md): intent records at once, published copies to the
//    volume before their source goes, the tiers every few seconds and on a
//    caller's fsync.
// Removed tier content goes to the layer's trash/ first (one rename), and a
// background thread deletes it, dropping a stub's spilled data before the
// stub itself, so a crash never leaves data nothing refers to.
//
// Thread safety: all methods may be called concurrently; callers serialize
// changes to one directory (Node::dir_mu).
#pragma once

#include <sys/stat.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "detourfs/caller.h"
#include "detourfs/result.h"
#include "store/adopted_numbers.h"
#include "store/change_record.h"
#include "store/failpoints.h"
#include "store/intent_log.h"
#include "store/layer_dirs.h"
#include "util/locks.h"

namespace detourfs {

// A name in a directory of a layer's tree, with its path (for records).
struct At {
  Layer layer = Layer::kVolume;
  int dir = -1;
  std::string_view name;
  std::string_view path;  // relative to the layer's tree root
  bool routed = false;    // volume changes are recorded only for routed content
  // One of a batch (a tree's copy) that the caller syncs as a whole (one
  // syncfs before it is published) instead of one fsync per file.
  bool batch = false;
};

struct MakeSpec {
  mode_t type = S_IFREG;  // S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK
  mode_t mode = 0644;     // permission bits asked for; the caller's umask applies
  dev_t rdev = 0;
  std::string_view target;        // a symlink's
  int open_flags = -1;            // a regular file: opened with these (O_CREAT|O_EXCL added)
  uint64_t id = 0;                // on a tier: the persistent id to record
  bool opaque = false;            // a directory hiding the volume's at its path
  bool replace_whiteout = false;  // the name holds a whiteout that this replaces
};

struct Made {
  UniqueFd fd;  // O_PATH, or the open file (MakeSpec::open_flags)
  struct stat st {};
};

// What an index entry (<tier>/index/<id>) records besides its id.
struct IndexInfo {
  std::string handle;  // the volume file's handle
  uint64_t links = 0;  // link count to report
  bool metacopy = false;
};

class ChangeLayer {
 public:
  ChangeLayer(std::array<LayerDirs, kLayerCount> layers, std::unique_ptr<Failpoints> failpoints,
              std::unique_ptr<ChangeSink> sink);
  ~ChangeLayer();
  ChangeLayer(const ChangeLayer&) = delete;
  ChangeLayer& operator=(const ChangeLayer&) = delete;

  bool has(Layer layer) const { return dirs_[Index(layer)].tree != nullptr; }
  const LayerDirs& dirs(Layer layer) const { return dirs_[Index(layer)]; }

  // Makes an entry as the caller (AsCaller): in place, or — replacing a
  // whiteout, or a 0:0 device a user makes on a tier — built aside in a
  // directory that carries the parent's default ACL, group and setgid bit
  // (`parent_fd`), then swapped in.
  Result<Made> Make(const At& at, const MakeSpec& spec, const Caller& caller, int parent_fd);
  // Links the file `src` (O_PATH) as `at`.
  Result<void> Link(int src, const At& at, bool replace_whiteout, uint64_t id);
  // Removes `at`. `whiteout`: leave a whiteout (a tier entry hiding the
  // volume's), in one renameat2(RENAME_WHITEOUT). A directory still holding
  // whiteouts, or a stub (`stub`: its spilled data must go too), goes to the
  // trash in one rename.
  Result<void> Remove(const At& at, bool is_dir, bool whiteout, bool stub, uint64_t id);
  // Puts a whiteout at a name the tier does not hold (EEXIST if it does).
  Result<void> Whiteout(const At& at);
  // renameat2 within one layer. `replaced_stub_goes`: a stub it replaces
  // (no other name, no open file: the caller knows) takes its spilled data
  // with it (LinkReplacedStub).
  Result<void> Rename(const At& from, const At& to, unsigned int flags, uint64_t id,
                      bool replaced_stub_goes = false);
  // A directory part at `at` made like `model` (an O_PATH fd, stat
  // `model_st`: owner, mode, times, xattrs), with `id`; if it exists
  // already, that one. Built aside, renamed in without replacing.
  Result<UniqueFd> EnsureDir(const At& at, int model, const struct stat& model_st, uint64_t id);
  // Marks (or unmarks) the tier directory `dirfd` opaque.
  Result<void> SetOpaque(const At& at, int dirfd, bool opaque, uint64_t id);
  // A complete copy of `src` (O_PATH, stat `st`; data read from `data` when
  // >= 0) published at `at` without replacing anything; with `index`, the
  // index entry's extra marks.
  // With `stub`, only the file is copied — no data, its id record pointing
  // at `stub` (data already in a spill store).
  Result<Made> CopyIn(const At& at, int src, int data, const struct stat& st, uint64_t id,
                      const IndexInfo* index = nullptr, const markers::SpillRef* stub = nullptr);
  // Records an id (and opacity, spill) on a tier entry: identity
  // bookkeeping, not a change of the merged view.
  Result<void> SetIdRecordAt(int dirfd, const char* name, const markers::IdRecord& rec,
                             int flags = 0);
  Result<void> SetIdRecord(int fd, const markers::IdRecord& rec);
  Result<void> SetFlag(int fd, const char* xattr);
  Result<void> SetNumber(int fd, const char* xattr, uint64_t value);
  // Moves a volume entry to held/ (its inode number stays reserved: a file
  // elsewhere reports it).
  Result<void> Hold(const At& at, uint64_t id);
  // After a `hold-whole` step held a tree as `held_name`, once the names
  // its files have elsewhere are known to be on the volume: those files
  // leave the held tree (in it they would count in st_nlink). Logged when
  // it fails.
  Result<void> LetGoOfLinked(const std::string& held_name);
  // Links the volume inode open at `fd` into held/: its number stays
  // reserved for `id`, which a file on a tier reports, whatever happens to
  // its names on the volume.
  Result<void> HoldInode(int fd, uint64_t id);
  // Tells the trash which numbers live files report (`in_use`), so that it
  // holds a volume inode with such a number instead of freeing it. Called
  // once, before Start().
  void SetNumbersInUse(std::function<bool(uint64_t)> in_use) { in_use_ = std::move(in_use); }
  // Moves `at` to the trash.
  Result<void> Trash(const At& at);
  // Makes the adopted numbers recorded so far durable (before a copy that
  // carries one is synced on its own).
  Result<void> SyncAdopted() { return adopted_.Sync(); }
  // Moves content no rule serves, which must make way, to AsideDir (never
  // deleted; logged with its path). ENOTSUP where the layer has none.
  Result<void> SetAside(const At& at);
  // Before a rename over `name` in `dirfd` on `layer`: a stub with no other
  // name is linked into the trash (its trash name, or "" if it is none), so
  // that once the rename made that its last name the drain drops its
  // spilled data with it (review 3 #3).
  std::string LinkReplacedStub(Layer layer, int dirfd, const char* name);
  // The warning naming what was set aside, and where (AsideDir).
  static void LogSetAside(Layer layer, std::string_view path, std::string_view kept);
  // Where content that must make way, and that nothing may delete, goes on
  // `layer`: a tier's kept/, the volume's held/ (null when it has none).
  const SharedFd& AsideDir(Layer layer) const;
  // Records a change the caller made through a file it holds open (a write,
  // a truncate, attributes, xattrs) — the data path stays the caller's.
  void Record(ChangeKind kind, const At& at, uint64_t id, uint64_t offset = 0, uint64_t length = 0);
  // A file or tree moved between layers: now at `to` (its layer and path),
  // having left `from_path` (recorded as path2).
  void RecordMove(const At& to, std::string_view from_path, uint64_t id) {
    Emit(ChangeKind::kMove, to, id, from_path);
  }

  // Spill stores: the data of `ref` opened with `flags`.
  Result<UniqueFd> OpenSpilled(const markers::SpillRef& ref, int flags);
  // Copies the open file `data` into `layer`'s spill store, synced; returns
  // its token.
  Result<uint64_t> SpillIn(Layer layer, int data);
  // Deletes spilled data (open fds keep it readable).
  void DropSpilled(const markers::SpillRef& ref);

  // Runs a multi-step change: the record written and synced, each step
  // (its progress synced after it), the record removed. A failure at the
  // first step leaves the old state; a later one leaves the record, and
  // `kept` (if given) is set: what the steps publish from work/ must stay
  // there, since the next start finishes the change. `kept` is set too
  // when every step ran but the record, neither marked done nor removed,
  // may run its last step again at the next start.
  //
  // With `held_whole` (a change with a `hold-whole` step): when every step
  // ran, the record stays, marked done, and its name is set there; the
  // caller ends it with SettleHold once it knows whether the volume shows
  // what the change published. A start that finds it lets go of the held
  // tree's linked files if the volume shows the published name.
  Result<void> Run(const Intent& intent, bool* kept = nullptr, std::string* held_whole = nullptr);
  // Ends a record Run left for `hold-whole` steps: each held tree in
  // `held` lets go of its files linked elsewhere (LetGoOfLinked; none when
  // the volume did not show the change: they stay), then the record goes.
  void SettleHold(const std::string& record, const std::vector<std::string>& held);
  // At start, before serving: carries out the records a crash left, then
  // clears every work/ into the trash.
  Status Recover();
  // A unique name in a layer's work/ for something built aside.
  static std::string WorkName(std::string_view what);
  int work(Layer layer) const { return dirs_[Index(layer)].work->get(); }

  Result<void> Hit(std::string_view failpoint) {
    return failpoints_ ? failpoints_->Hit(failpoint) : Result<void>();
  }
  // The layer changed: its next background sync is due (tiers; the volume's
  // routed changes are synced by whoever made them), and so is the sync of
  // its private directories at the next fsync of a directory on it.
  void Dirty(Layer layer) {
    dirty_[Index(layer)].store(true, std::memory_order_release);
    AreasChanged(layer);
  }
  // Something in the layer's private directories changed (after the change).
  void AreasChanged(Layer layer) {
    areas_gen_[Index(layer)].fetch_add(1, std::memory_order_acq_rel);
  }
  // For an fsync of a directory with a part on `layer`: the layer's private
  // directories (work/, trash/, held/, kept/, index/) fsynced if they
  // changed since they last were, and only then an answer: a caller that
  // finds another's sync under way waits for it. A change published by a
  // rename out of work/, or cleared by one into trash/, is durable only once
  // both directories are (POSIX promises nothing for a rename until then;
  // ext4's journal happens to commit it with either).
  Result<void> SyncAreas(Layer layer) EXCLUDES(areas_sync_mu_);
  // Starts the background threads (one empties the trash, one syncs the
  // tiers every few seconds); Stop joins them, then syncs a last time.
  void Start();
  void Stop();
  // Wakes the trash thread and waits until the trash is empty (tests).
  void DrainTrash();

 private:
  // Whether a tier's index/ has an entry for `id`.
  bool IndexedAnywhere(uint64_t id) const;
  // Before an entry is given `id`: a volume inode number is recorded as
  // adopted (adopted_numbers.h), so the volume never frees its inode.
  Result<void> Adopt(uint64_t id);
  AdoptedNumbers adopted_;
  std::function<bool(uint64_t)> in_use_;  // set before Start(), read by the trash
  // One step (idempotent: a move whose source is gone, a trash or whiteout
  // already made, is found done). `served`: the step belongs to a change the
  // mount went on serving after it stopped (IntentLog::MarkServed): what it
  // would clear is set aside instead, and a rename replaces nothing.
  Result<void> RunStep(const IntentStep& step, bool served);
  // Makes a step durable: each tier it touches whole (SyncWhole); on the
  // volume, both directories of its rename (and the trash, for a step that
  // clears).
  Result<void> SyncStep(const IntentStep& step);
  // A layer whole: syncfs, then an fsync of its root (what stands in for a
  // syncfs on a FUSE filesystem); a tier's private directories then count
  // as synced.
  // Logged on failure, saying `when`.
  Result<void> SyncWhole(Layer layer, const char* when);
  // After a move of a volume entry at `from` into held/ or the trash
  // (`to_dir`): both directories synced (a failure is logged).
  static void SyncMoveOnVolume(const At& from, int to_dir);
  // Before a volume directory leaves users' sight for good (held/): the
  // whole volume synced (SyncWhole); a failure is logged.
  void SyncVolumeWhole();
  // RunStep, tried again on a transient error (EIO and the like).
  Result<void> RunStepRetrying(const IntentStep& step, bool served);
  // At start, after a change with `hold-whole` steps was carried out:
  // their held trees let go of their linked files if the volume shows
  // every name the change published from the volume's work/.
  void LetGoIfPublished(const Intent& intent);
  // At start, for a rename whose destination was taken meanwhile: its
  // source to kept/ (a tier) or held/ (the volume), logged; never deleted.
  Result<void> SetAsideStepSource(const IntentStep& step, const std::string& record);
  Result<UniqueFd> OpenAreaParent(const IntentPath& p, std::string* leaf);
  int AreaFd(Layer layer, Area area) const;
  void Emit(ChangeKind kind, const At& at, uint64_t id, std::string_view path2 = {},
            uint64_t offset = 0, uint64_t length = 0);
  void NoteTrash() EXCLUDES(bg_mu_);
  // After `gone` (stat `st` before it moved) went to `trash`: unlinks it at
  // once when it is one name of a file with others, else wakes the drain.
  void DropLinkedName(int trash, const std::string& gone, const struct stat& st) EXCLUDES(bg_mu_);
  void Background() EXCLUDES(bg_mu_);  // empties the trash when told to
  void SyncLoop() EXCLUDES(bg_mu_);    // syncs dirty tiers every kSyncInterval
  Result<void> EmptyTrash(Layer layer);

  const std::array<LayerDirs, kLayerCount> dirs_;
  std::unique_ptr<Failpoints> failpoints_;
  std::unique_ptr<ChangeSink> sink_;
  std::unique_ptr<IntentLog> intents_;
  Mutex record_mu_;  // orders records (a leaf)
  uint64_t seq_ GUARDED_BY(record_mu_) = 0;
  Mutex intent_mu_;  // one intent record written at a time (IntentLog's counter)

  std::array<std::atomic<bool>, kLayerCount> dirty_{};
  // Changes to each layer's private directories, counted, and the count
  // the last SyncAreas covered.
  std::array<std::atomic<uint64_t>, kLayerCount> areas_gen_{};
  Mutex areas_sync_mu_;  // one SyncAreas at a time (a leaf: held across fsyncs only)
  std::array<uint64_t, kLayerCount> areas_synced_ GUARDED_BY(areas_sync_mu_){};
  Mutex bg_mu_;
  std::condition_variable_any bg_cv_;
  bool stop_ GUARDED_BY(bg_mu_) = false;
  bool trash_pending_ GUARDED_BY(bg_mu_) = true;
  uint64_t trash_rounds_ GUARDED_BY(bg_mu_) = 0;
  std::thread bg_;
  std::thread sync_;
};

}  // namespace detourfs
