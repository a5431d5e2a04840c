// OverlayImpl: the merged namespace behind the Overlay interface. One code
// path serves every name, routed or not: each request probes the name on
// every layer its directory has a part on (Probe), decides what the merged
// view shows there (a routed name: its tier's entry or whiteout first, else
// the volume's; an unrouted name: the volume's), and acts through the
// ChangeLayer. The .cc files split the work by concern:
//   routes.cc          which rule a name falls under; node paths
//   lookup.cc          Probe, lookup, forget, identity (persistent ids)
//   attrs.cc           getattr, setattr, readlink, statfs
//   xattrs.cc          extended attributes
//   create.cc          mknod, mkdir, symlink, create, link
//   remove.cc          unlink, rmdir
//   rename.cc          rename within a layer, and the flags
//   move_across.cc     files and trees moving between layers
//   copy_up.cc         directory parts, copy-up, deep copy-up, the index
//   spill.cc           tier capacity and spills along the fallback chain
//   file_io.cc         open files: read, write, fsync, release
//   merged_listing.cc  readdir, emptiness
//   startup.cc         Open: recovery, start-up checks
// Locks (docs/architecture.md "Locks"): dir_mu of directories, several taken
// as one WriteLockSet (no order among them); then content_mu of nodes,
// descendants before ancestors; then leaf locks (the inode table, the fd
// cache, handle lists, the change layer's record lock).
#pragma once

#include <sys/stat.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "detourfs/overlay.h"
#include "inodes/fd_cache.h"
#include "inodes/inode_table.h"
#include "overlay/handles.h"
#include "overlay/move_gate.h"
#include "overlay/resolver.h"
#include "route/router.h"
#include "store/change_layer.h"
#include "store/file_copy.h"
#include "store/id_source.h"
#include "store/tier_space.h"
#include "store/tree_walk.h"

namespace detourfs {

struct OverlayOptions {
  size_t fd_cache_capacity = 4096;
  // The kernel caches pages (FUSE writeback cache): files opened write-only
  // are opened read-write below, and O_APPEND is left to the kernel.
  bool writeback_cache = true;
  // Seconds "this routed directory has no volume part" is trusted before it
  // is looked for again (as the kernel trusts "no such name").
  double negative_timeout = 60.0;
};

struct TierSpec {
  Layer layer = Layer::kMemory;
  uint64_t capacity = 0;  // 0: its filesystem's size
  double high_watermark = 0.90;
};

// Everything the overlay is made of, opened by the daemon.
struct OverlaySetup {
  std::array<LayerDirs, kLayerCount> layers;  // the volume's, and each configured tier's
  std::vector<TierSpec> tiers;
  Router router;
  OverlayOptions options;
  std::unique_ptr<ChangeSink> sink;  // may be null
  std::unique_ptr<Failpoints> failpoints;
};

// Opens the overlay: recovers what a crash left, checks the tiers against
// the rules. The background work starts with StartBackground (after the
// daemon's fork).
Result<std::unique_ptr<Overlay>> OpenOverlay(OverlaySetup setup);

// The route of a child name, for each type it may have: a directory-only
// rule ("**/build/") routes the name only as a directory.
struct ChildRoute {
  int dir = -1;  // rule index when the name is a directory (-1: none)
  int file = -1;
  Layer dir_layer = Layer::kVolume;
  Layer file_layer = Layer::kVolume;
  int For(mode_t type) const { return S_ISDIR(type) ? dir : file; }
  Layer LayerFor(mode_t type) const { return S_ISDIR(type) ? dir_layer : file_layer; }
};

// What one layer holds at a name.
struct LayerHit {
  bool has = false;
  bool whiteout = false;
  struct stat st {};
  markers::IdRecord rec;  // tiers: the entry's id record
};

// A name in a directory as Probe found it on every layer, and what the
// merged view shows there.
struct Slot {
  ChildRoute route;
  bool removed_dir = false;              // the directory itself is gone
  Binding dir;                           // the directory's binding
  std::array<LayerHit, kLayerCount> at;  // what each of its parts holds
  bool volume_visible = false;           // its volume part is consulted
  // The merged answer.
  bool exists = false;
  mode_t type = 0;
  struct stat st {};  // the entry's own stat (its home part's)
  Binding binding;    // for a node made for it
  uint64_t pid = 0;
  // For creates: what the name's layer holds that a new entry replaces.
  bool Whiteout(Layer layer) const { return at[Index(layer)].whiteout; }
};

class OverlayImpl final : public Overlay {
 public:
  OverlayImpl(OverlaySetup setup, uint64_t root_pid, const Binding& root,
              std::unique_ptr<IdSource> ids);
  ~OverlayImpl() override;

  Result<Entry> Lookup(uint64_t parent, std::string_view name) override;
  void Forget(uint64_t ino, uint64_t nlookup) override;
  Result<Entry> Mknod(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                      const Caller& caller) override;
  Result<Entry> Mkdir(uint64_t parent, std::string_view name, mode_t mode,
                      const Caller& caller) override;
  Result<Entry> Symlink(std::string_view target, uint64_t parent, std::string_view name,
                        const Caller& caller) override;
  Result<Entry> Link(uint64_t ino, uint64_t new_parent, std::string_view new_name) override;
  Result<void> Unlink(uint64_t parent, std::string_view name) override;
  Result<void> Rmdir(uint64_t parent, std::string_view name) override;
  Result<void> Rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                      std::string_view new_name, unsigned int flags, const Caller& caller) override;
  Result<struct stat> GetAttr(uint64_t ino, FileHandle* fh) override;
  Result<struct stat> SetAttr(uint64_t ino, const SetAttrRequest& req, FileHandle* fh) override;
  Result<std::string> Readlink(uint64_t ino) override;
  Result<struct statvfs> StatFs(uint64_t ino) override;
  Result<FileHandle*> Open(uint64_t ino, int flags) override;
  Result<std::pair<Entry, FileHandle*>> Create(uint64_t parent, std::string_view name, mode_t mode,
                                               int flags, const Caller& caller,
                                               bool kill_suidgid) override;
  void Release(FileHandle* fh) override;
  int Read(FileHandle& fh, off_t off, size_t size, const ReadFn& reply) override;
  Result<size_t> Write(FileHandle& fh, off_t off, size_t size, const WriteFn& write) override;
  Result<void> Fsync(FileHandle& fh, bool datasync) override;
  Result<void> Fallocate(FileHandle& fh, int mode, off_t offset, off_t length) override;
  Result<size_t> CopyFileRange(FileHandle& in, off_t off_in, FileHandle& out, off_t off_out,
                               size_t len, unsigned int flags) override;
  Result<off_t> Lseek(FileHandle& fh, off_t off, int whence) override;
  Result<DirHandle*> OpenDir(uint64_t ino) override;
  Result<void> ReadDir(DirHandle& dh, off_t offset, bool plus,
                       const std::function<bool(const DirEntry&)>& emit) override;
  void ReleaseDir(DirHandle* dh) override;
  Result<void> FsyncDir(DirHandle& dh, bool datasync) override;
  Result<size_t> GetXattr(uint64_t ino, const char* name, void* value, size_t size) override;
  Result<size_t> ListXattr(uint64_t ino, char* list, size_t size) override;
  Result<void> SetXattr(uint64_t ino, const char* name, const void* value, size_t size, int flags,
                        bool kill_sgid) override;
  Result<void> RemoveXattr(uint64_t ino, const char* name) override;
  size_t NodeCount() override { return table_.size(); }
  size_t CachedFds() override { return cache_.size(); }
  void StartBackground() override;
  void Shutdown() override;

  // Start-up (startup.cc).
  Status Start();
  void ReportUnroutedContent(Layer layer);
  // Spilled data no stub refers to (a crash between a spill's copy and its
  // stub's mark, or a tier wiped or dropped from the config) is never
  // deleted: it is set aside in spill/orphaned and reported.
  void SetAsideOrphanedSpills();

 private:
  // --- routes.cc ---
  ChildRoute RouteOfChild(Node* parent, std::string_view name);
  int RouteOf(Node* node);
  Layer TierOf(int route) const;
  std::string PathOf(Node* node);  // "" for the root, or a lost name's last
  static std::string Join(const std::string& dir, std::string_view name);
  bool IsPrivateName(Node* parent, std::string_view name) const;

  // --- lookup.cc ---
  // A routed directory found without a volume part long enough ago is
  // looked at again (made underneath the mount meanwhile?).
  void RecheckVolumePart(Node* dir);
  Result<NodePin> NodeOf(uint64_t ino);
  Result<NodePin> DirOf(uint64_t ino);
  static Result<void> ValidName(std::string_view name);
  // The caller holds dir->dir_mu (shared or not).
  Result<Slot> Probe(Node* dir, std::string_view name);
  // The node for what `s` found (made if new); takes a lookup reference
  // when `lookup`.
  Result<NodePin> NodeFor(Node* dir, std::string_view name, const Slot& s, bool lookup);
  Result<Entry> EntryFor(Node* dir, std::string_view name, const Slot& s);
  // The persistent id of a volume entry `name` (stat `st`) in `dir`.
  // Whether the volume part `dirfd` of `dir` is marked as holding entries
  // that keep an id (markers::kIdsXattr; cached in dir->volume_ids), and
  // marking it so. A volume rename out of a marked directory marks the
  // destination: the entry's st_ino is the id it carries.
  bool IdsMarked(Node* dir, int dirfd);
  Result<void> MarkIds(Node* dir, int dirfd);
  Result<void> CarryIds(Node* from, int from_fd, Node* to, int to_fd) {
    return IdsMarked(from, from_fd) ? MarkIds(to, to_fd) : Result<void>();
  }
  Result<uint64_t> VolumePid(Node* dir, int dirfd, const char* name, const struct stat& st);
  // A tier entry's id: its record's, or a new one recorded now.
  Result<uint64_t> TierPid(int dirfd, const char* name, const struct stat& st,
                           markers::IdRecord* rec, uint64_t volume_pid);
  // Whether `pid` has an index entry on `tier`.
  bool Indexed(Layer tier, uint64_t pid) EXCLUDES(index_mu_);
  bool IndexedOnATier(uint64_t pid) EXCLUDES(index_mu_) {
    return Indexed(Layer::kMemory, pid) || Indexed(Layer::kDisk, pid);
  }
  // The index entry of `pid` on `tier`: its directory and name, for the
  // markers on it (by name: an entry may be a symlink).
  struct IndexAt {
    int dir;
    std::string name;
  };
  IndexAt IndexEntryAt(Layer tier, uint64_t pid) {
    return IndexAt{changes_->dirs(tier).index->get(), markers::IndexName(pid)};
  }

  // --- attrs.cc ---
  // The attributes to report for `node` (binding `b`, read under its
  // content_mu): st_ino its id, a directory spanning layers st_nlink 1, a
  // stub its data's size and times.
  Result<struct stat> StatOf(Node* node, const Binding& b, FileHandle* fh)
      REQUIRES_SHARED(node->content_mu);
  Result<struct stat> SetAttrOf(uint64_t ino, const SetAttrRequest& req, FileHandle* fh);
  void Report(Node* node, const Binding& b, struct stat* st);
  static Layer Primary(const Binding& b);

  // --- copy_up.cc ---
  // `dir`'s part on `tier`, made (with its ancestors') if missing.
  Result<SharedFd> EnsureTierDir(Node* dir, Layer tier);
  // The tier a routed file bound to the volume is copied up to before it
  // changes, if any (a name of it routed there).
  std::optional<Layer> CopyUpTarget(Node* node, const Binding& b);
  // Copies `node` (content_mu held exclusively) up to `tier`; its id stays.
  // `index`: into the tier's index even with one link (it is about to get
  // a second name on the tier).
  Result<void> CopyUp(Node* node, Layer tier, bool index = false) REQUIRES(node->content_mu);
  // An index-bound file none of whose names is a tier name (every name of
  // it on the volume: the entry has one link) moves its index entry to
  // `to`, so a name there can link it. EXDEV where a tier name links it.
  Result<void> MoveIndexEntry(Node* node, Layer to) REQUIRES(node->content_mu);
  // Its work, under the node's lock: `src` (stat `st`) is the entry on
  // `from`, `data` its data (-1: none); returns the new entry.
  Result<Made> RelocateIndexEntry(uint64_t pid, Layer from, Layer to, int src,
                                  const struct stat& st, int data);
  // Copy-up before a change, if the node needs one.
  Result<void> PrepareChange(Node* node);
  // Makes a routed directory's tier part complete (its volume part copied
  // up, entry by entry) and opaque: before it is renamed within its tier.
  Result<void> DeepCopyUp(Node* dir, Layer tier);

  // --- spill.cc ---
  static bool IsFull(int err) { return err == ENOSPC || err == EDQUOT; }
  TierSpace* SpaceOf(Layer layer) const { return spaces_[Index(layer)].get(); }
  // The layer a node's data takes space on.
  static Layer DataLayer(const Binding& b);
  // Moves the data of `node` (its data on `full`) to the next store of its
  // route's fallback chain.
  Result<void> Spill(Node* node, Layer full);
  std::optional<Layer> NextStore(Node* node, Layer from);

  // --- file_io.cc ---
  static int BackingFlags(int flags, bool writeback_cache);
  // Points every open handle of `node` at its data now (after it moved). A
  // handle that cannot be reopened there now is left to follow at its next
  // use (HandleFd): the move itself has happened either way.
  void RepointHandles(Node* node, const Binding& b) REQUIRES(node->content_mu);
  // The fd of an open file's data: the handle's own, or, for one that could
  // not follow its data when it moved, the data opened now.
  Result<SharedFd> HandleFd(Node* node, FileHandle& fh) REQUIRES_SHARED(node->content_mu);
  Result<FileHandle*> OpenNode(NodePin node, int flags);
  void Track(FileHandle* fh);
  void Track(DirHandle* dh);

  // --- create.cc ---
  struct MakeRequest {
    MakeSpec spec;
    int create_flags = -1;  // Create: the open flags
    bool kill_suidgid = false;
  };
  Result<std::pair<Entry, FileHandle*>> Make(uint64_t parent, std::string_view name,
                                             MakeRequest req, const Caller& caller);

  // --- remove.cc ---
  Result<void> Remove(uint64_t parent, std::string_view name, bool dir);
  // Removes the entry `s` found at `name` in `dir` for a remove or a rename
  // over it; `node` is its node, content_mu held. Keeps an unlinked file
  // reachable for its open handles.
  Result<void> RemoveEntry(Node* dir, std::string_view name, const Slot& s, Node* node)
      REQUIRES(node->content_mu);

  // --- rename.cc / move_across.cc ---
  // A tree copied aside on its destination layer, before it is published.
  struct StagedTree {
    Layer layer = Layer::kVolume;
    std::string name;      // in the layer's work/
    uint64_t src_pid = 0;  // what it is a copy of
    uint64_t dst_pid = 0;  // what it replaces (0: nothing)
    std::string src_path;  // where the source was when it was copied (routes)
    uint64_t files = 0;
    uint64_t bytes = 0;
    // Tier content in the tree no rule serves (left by an earlier config,
    // or a part whose parent's part went with a tier emptied at a stop):
    // its tier and path in the tree. Set aside when the tree is published,
    // never left in a part that goes to the trash.
    std::vector<std::pair<Layer, std::string>> unserved;
    ~StagedTree();
    ChangeLayer* changes = nullptr;  // to clear it away if never published
    bool published = false;
    // A link to the file itself (a hard-linked one moves as one more name
    // of the same inode): its binding stays as it is.
    bool linked = false;
    // A copy on the volume holding links to volume files with other names:
    // until it is published or removed, each counts one name more.
    bool links_volume_files = false;
  };
  // What a rename found it needs before it can go on: the renames lock
  // exclusively, a frozen tree, trees to copy before the next round.
  // A tree to copy between two rounds, with no lock held but its freeze
  // (a copy takes as long as its size: nothing else waits for it).
  struct StageJob {
    NodePin x;
    NodePin d;
    std::string n;
    NodePin replaced;
    Layer to = Layer::kVolume;
    bool second = false;  // x2's (an exchange)
  };
  struct RenameNeeds {
    bool exclusive = false;
    bool freeze = false;
    std::vector<NodePin> freeze_roots;
    std::vector<StageJob> stage;
    // What the driver staged for the next round (from `stage`).
    std::shared_ptr<StagedTree> staged;   // x1's copy
    std::shared_ptr<StagedTree> staged2;  // x2's, for an exchange
    // Copies dropped, removed before the next round's are made (not left
    // to the trash: see ExchangeAcross).
    std::vector<std::shared_ptr<StagedTree>> discard;
    // Set by the round that made the rename: a routed name was involved, so
    // the parents' volume parts may need their times updated
    // (TouchVolumePart); not for a rename of two names of one file.
    bool routed = false;
  };
  // Whether `s` (staged in an earlier round) is still a copy of `x`, at
  // `n` in `d`, bound for `to`: else things changed and it is made again.
  bool StagedFor(const StagedTree& s, Node* x, Node* d, std::string_view n, Layer to);
  // Removes a copy never published from its work/ at once (with no lock
  // held: nothing but this rename knows it); left to the trash if it
  // cannot be.
  void Discard(StagedTree* s);
  // Between two rounds of a rename, no lock held: the copies `more` drops
  // removed, the ones it asks for made (bound for a tier first) into
  // `needs`.
  Result<void> StageBetweenRounds(RenameNeeds* more, RenameNeeds* needs);
  struct RenameArgs {
    Node* d1;
    std::string_view n1;
    const Slot& s1;
    Node* x1;
    Node* d2;
    std::string_view n2;
    const Slot& s2;
    Node* x2;  // the entry replaced or exchanged, if any
    unsigned int flags;
    const Caller& caller;
    SharedFd victim_fd;  // the replaced file, kept for its handles
    struct stat victim_st {};
    bool replaced_index = false;  // x2, a file (maybe indexed), lost a name
  };
  Result<void> RenameLocked(Node* d1, std::string_view n1, Node* d2, std::string_view n2,
                            unsigned int flags, const Caller& caller, RenameNeeds& have,
                            RenameNeeds* need);
  Result<void> Move(RenameArgs& a, RenameNeeds& have, RenameNeeds* need);
  Result<void> Exchange(RenameArgs& a, RenameNeeds& have, RenameNeeds* need);
  Result<void> RenameOnVolume(RenameArgs& a, RenameNeeds& have, RenameNeeds* need);
  // Both on the volume alone (VolumeOnly): one RENAME_EXCHANGE there.
  // Both parents' volume parts and both paths, for renames on the volume.
  struct VolumeSides {
    SharedFd held1, held2;  // keep v1, v2 open
    int v1, v2;
    std::string p1, p2;
  };
  Result<VolumeSides> VolumeSidesOf(const RenameArgs& a);
  Result<void> ExchangeOnVolume(RenameArgs& a);
  // A name made on the volume (a file, a link) where slot `s` found the
  // volume's entry hidden: that entry goes first, the tiers' whiteouts
  // after (vdirfd: the parent's volume part).
  Result<void> ClearHiddenVolumeName(const Slot& s, int vdirfd, std::string_view name,
                                     const std::string& path);
  void DropTierWhiteouts(Node* dir, std::string_view name, const Slot& s, const std::string& path);
  // Two volume entries, with an unrouted directory's tier parts carried.
  Result<void> ExchangeCarrying(RenameArgs& a, RenameNeeds& have, RenameNeeds* need);
  // Whether `x`, found as `s`, lives on the volume alone: a file not copied
  // up, a directory with no part on a tier. It moves by a volume rename
  // wherever it goes (content on the volume under a routed name is what
  // every home holds the day detourfs arrives: copied up when changed).
  static bool VolumeOnly(Node* x, const Slot& s);
  // Removes the whiteouts the tiers hold at `name` in `d` (slot `s`): a
  // volume entry renamed there must not be hidden by one left for another
  // type of entry.
  Result<void> ClearWhiteouts(Node* d, std::string_view name, const Slot& s);
  // After a rename: the directories within `top` with no tier part take the
  // layer the routes give their new paths.
  void Reroute(Node* top);
  Result<void> RenameOnTier(RenameArgs& a, Layer tier);
  Result<void> RenameIndexed(RenameArgs& a, Layer to, RenameNeeds& have, RenameNeeds* need);
  // A volume name `n` in `d` (slot `s`) of the index-bound file `x` gets
  // its link to the index entry on the index's tier, if it has none.
  Result<void> LinkIndexedUp(Node* d, std::string_view n, const Slot& s, Node* x);
  // Before a rename replaces a file: an fd on it for its open handles; a
  // hard-linked volume file replaced on a tier (`on_tier`) copied into the
  // index first, so its other names stop counting the replaced one.
  Result<void> HoldVictim(RenameArgs& a, bool on_tier);
  // A tier file or directory about to leave its name `n` in `d` (slot `s`)
  // whose id is the number of the volume entry there: that entry goes to
  // held/ (the volume never gives the number to another while it is held),
  // so no whiteout is needed at the old name. So is a directory's own
  // volume part (its content's persisted copy, copied up before the move).
  // Held before the move: a crash between leaves the tier's entry at its
  // old name. True if held.
  // `any_file`: also a visible volume entry there that is not a directory
  // and whose number is not the id (a volume name of a hard-linked file
  // whose copy is a tier's index entry): an exchange leaves no whiteout.
  bool HoldOrigin(Node* d, std::string_view n, const Slot& s, Node* x, bool any_file = false);
  // One name of an index-bound file gone: its count, or its entry. With
  // `unindex` (the directory the name `gone` left), true when the entry
  // went because the one name left is a link of it on the tier (Unindex):
  // the caller, holding the node's content_mu, unbinds it.
  bool DropIndexName(Node* node, const Binding& b, Node* unindex = nullptr,
                     std::string_view gone = {});
  bool Unindex(Node* node, const Binding& b, Node* dir, std::string_view gone);
  // The index entry of `pid` on `tier` (stat `st`), whose one name is a link
  // of it there, goes: that name is an ordinary tier file from now on (its
  // node, if any, is unbound by the caller). False if it stays (a failure,
  // or its data still the volume file's).
  bool TrashLoneEntry(Layer tier, uint64_t pid, const struct stat& st);
  // An index-bound file counted as one name, which is a link of its entry
  // on the entry's tier, leaves the index (TrashLoneEntry) and is unbound:
  // an ordinary tier file from now on. True if it left.
  bool LeaveIndexIfLone(Node* node) REQUIRES(node->content_mu);
  // Whether the index entry of `pid` on `layer` has one name left.
  bool IndexEntryIsLone(Layer layer, uint64_t pid);
  // The node of such a file is bound to its name, not the entry.
  void UnbindIndex(Node* node) REQUIRES(node->content_mu);
  // A hard-linked file's name moved to another layer: the inode gets the
  // new name there (StageLink) and loses the old one, as one recorded change.
  Result<void> MoveLinked(RenameArgs& a, Layer to, RenameNeeds& have, RenameNeeds* need);
  // RENAME_WHITEOUT: the caller's whiteout device at the old name, on
  // `layer` (its directory `dirfd`), replacing the layer's own whiteout there.
  Result<void> LeaveUserWhiteout(RenameArgs& a, Layer layer, int dirfd, bool replace_whiteout);
  // RENAME_WHITEOUT after a move between layers: the caller's whiteout at
  // the old name, on the layer a device there belongs to.
  Result<void> UserWhiteoutAfterMove(RenameArgs& a);
  void Renamed(RenameArgs& a, bool exchanged);
  // The name a rename replaced, of a file in an index, counts no more:
  // after the rename, under the file's lock (waited for, as an unlink does).
  void DropReplacedIndexName(RenameArgs& a);
  // A rename replacing the last volume name of an indexed file holds its
  // inode first (held/: its number stays the file's); from HoldVictim.
  Result<void> HoldReplacedVolumeInode(const RenameArgs& a);
  // A file (one link, no index entry) between layers: frozen and copied
  // aside between two rounds with no lock held, then published with the
  // renames lock held exclusively (MoveFile) — no mount-wide lock is held
  // across its copy (review 2026-12-07 #5).
  Result<void> MoveFileAcross(RenameArgs& a, Layer to, RenameNeeds& have, RenameNeeds* need);
  // Publishes `staged` (a copy of a.x1 in `to`'s work/; copied now, under
  // the lock, when null) and removes the source, as one recorded change.
  Result<void> MoveFile(RenameArgs& a, Layer to, const std::shared_ptr<StagedTree>& staged);
  // Appends `publish` (a file's copy renamed to its new name, whose slot is
  // `s2`) to `steps`; on the volume with what it needs around it: a hidden
  // volume entry there (a directory removed under a directory-only rule's
  // name) makes way first, and tier whiteouts of the name, which would
  // hide the file, go after.
  static void AddPublishSteps(const Slot& s2, const IntentStep& publish,
                              std::vector<IntentStep>* steps);
  // The tier whose index holds the file at `name` in `dirfd` (on `from`,
  // id `pid`), and the entry; none if no index does.
  std::optional<Layer> IndexOf(int dirfd, const char* name, const struct stat& st, Layer from,
                               uint64_t pid, SharedFd* entry);
  // A hard-linked file met by a tree copy for `to`: its name in the copy
  // (`dfd`) made a link of its one inode there (its index entry on a tier,
  // made now for a volume file; its volume inode on the volume). False when
  // an ordinary copy is right; EXDEV when its inode is on another tier.
  // The volume inode the index entry of `pid` on tier `index` stands for
  // (an O_PATH fd by its handle); EXDEV when it has none or it is gone.
  Result<UniqueFd> VolumeInodeOf(Layer index, uint64_t pid);
  // For a tree copy: whether the name met (stat `st`, a link of the entry
  // `entry` of `pid` on `tier`) is the file's one name; if so the entry
  // goes (TrashLoneEntry) and the name is copied as an ordinary file.
  bool LoneTierLink(uint64_t pid, Layer tier, const struct stat& st, const SharedFd& entry);
  // For a tree copy: the index entry of `pid` (`entry`, on `from`) moved to
  // `to` through its node (MoveIndexEntry) and linked as `n` in `dfd`, under
  // the node's lock. EXDEV where it cannot move (a tier name links it, the
  // kernel does not know the file, its lock is held).
  // A volume name with one link (`name` in `dirfd`, stat `st`, id `pid`)
  // that an index entry stands for by handle (its other names removed
  // since): copies take the entry's data and attributes, not the volume
  // file's.
  bool IndexedVolumeName(int dirfd, const char* name, const struct stat& st, uint64_t pid);
  Result<void> MoveIndexEntryInto(uint64_t pid, Layer from, Layer to, const SharedFd& entry,
                                  int dfd, const char* n);
  Result<bool> LinkIntoCopy(int sfd, const char* n, const struct stat& st, Layer from, uint64_t pid,
                            Layer to, int dfd);
  // A hard-linked file staged for `to` as one more link of its inode (its
  // index entry's on a tier, its volume inode's on the volume); a volume
  // one bound for a tier is copied into the tier's index first. EXDEV where
  // the inode is on neither.
  Result<std::shared_ptr<StagedTree>> StageLink(Node* x, Layer to) REQUIRES(x->content_mu);
  // Before the publishing round (the renames lock held shared, not
  // exclusively): what StageLink would copy (a volume file with several
  // names into the tier's index, an index entry to another tier) is copied
  // now, under x's lock alone, so that StageLink only links; an index entry
  // whose one name left is its tier link leaves the index instead.
  Result<void> CopyLinkedAhead(Node* x, Layer to) EXCLUDES(x->content_mu);
  // A replaced volume file with several names whose routed name is on a
  // tier: copied into the tier's index (its other names go on counting
  // right). From HoldVictim, or ahead, before the publishing round.
  Result<void> CopyVictimUp(const RenameArgs& a);
  // Copies the tree `x` (at `n` in `d`) aside on `to`; `replaced` is what
  // it will replace (for the checks of the publishing round).
  // Never under x's lock (it takes the locks of x and what is inside).
  Result<std::shared_ptr<StagedTree>> StageTree(Node* x, Node* d, std::string_view n,
                                                Node* replaced, Layer to) EXCLUDES(x->content_mu);
  // Whether the file x has other names or an index entry (it is linked,
  // StageLink, not copied).
  bool LinkedFile(Node* x) REQUIRES_SHARED(x->content_mu);
  // Its copy alone (one link, no index entry: else EXDEV), the node locked
  // at least for reading by the caller.
  // A tier's copy of what a move to the volume publishes, parked in the
  // tier's work/ under `name` until the volume shows the published copy
  // (a whiteout took its name where the volume has one).
  struct Leaving {
    Layer layer = Layer::kMemory;
    std::string name;
    bool whiteout = false;
  };
  // How a move to the volume may be settled: undone when the volume lost
  // it (false when a record of the move is left to replay, or a tree's
  // volume part moved with it); the copy's name in the volume's work/.
  struct Settle {
    bool undoable = true;
    std::string staged;
  };
  // After a move to the volume was published: the volume's directory
  // synced and the name looked up again. When it shows `published`, the
  // tiers' copies go to the trash. When the volume lost it, each goes back
  // to the old name (the move undone on the tiers) or aside to kept/ (and
  // the volume's copy, if still in work/, to held/), logged, and EIO. When
  // the check itself failed, the copies are kept aside and the move stands.
  // Whether the volume showed it.
  Result<bool> SettleLeaving(const RenameArgs& a, int dst_dir, const struct stat& published,
                             const Settle& how, const std::vector<Leaving>& leaving);
  // A tier's copy back at the old name (over the whiteout the move left):
  // whether it is.
  bool PutBack(const RenameArgs& a, const Leaving& l);
  // The stats of an exchange's copies bound for the volume, in its work/.
  Result<void> StatVolumeCopies(std::array<Layer, 2> to, const RenameNeeds& have,
                                std::array<struct stat, 2>* copies);
  // What the volume showed of a change published there: the copy, no such
  // thing, or nothing to tell by (the check failed).
  enum class Shown { kYes, kNo, kUnknown };
  // After an exchange across layers was published and its nodes followed
  // their copies: SettleLeaving for each copy published on the volume
  // (x1's lands in dst_dirs[0], x2's in dst_dirs[1]; `copies`, their stats
  // before; `followed`, the errno of opening it to follow, 0 if none),
  // never undone. A node that could not follow keeps its tier copies
  // (kept aside).
  Shown SettleExchanged(const RenameArgs& a, std::array<Layer, 2> to, std::array<int, 2> dst_dirs,
                        const RenameNeeds& have, const std::array<struct stat, 2>& copies,
                        const std::array<std::vector<Leaving>, 2>& leaving,
                        std::array<int, 2> followed);
  // Reads back the copy `name` in `dirfd` just written to the volume and
  // compares it with `data` (the source's, open): EIO, logged, when the
  // volume did not keep it.
  Result<void> ReadBack(int data, int dirfd, const std::string& name, const std::string& path);
  // Reads back the copy `name` in `dirfd` and compares it with `want`, its
  // source's digest: EIO, logged (saying that `stays` stays where it is),
  // when it differs or cannot be read.
  Result<void> ReadBackAgainst(int dirfd, const std::string& name, const DataDigest& want,
                               const std::string& path, std::string_view stays);
  // Opens a copy on the volume to read it back: synced, its cached pages
  // dropped.
  Result<UniqueFd> OpenForReadBack(int dirfd, const std::string& name);
  // The files of the tree `name` (in the volume's work/, synced) read back
  // and compared with their sources' digests: EIO, logged, at the first
  // that does not match.
  Result<void> ReadBackTree(int work, const std::string& name, const std::string& src_path,
                            const std::vector<std::pair<std::string, DataDigest>>& files);
  Result<std::shared_ptr<StagedTree>> StageFileCopy(Node* x, Layer to)
      REQUIRES_SHARED(x->content_mu);
  // A staging job between two rounds of a rename (no lock held but the
  // freeze of what it copies): a tree, or a file.
  Result<std::shared_ptr<StagedTree>> StageJobCopy(const StageJob& job);
  // Asks for a.x1 (frozen) to be copied to `to`'s work/ between this round
  // and the next, which publishes it with the renames lock held
  // exclusively: EAGAIN, the next round's needs in `need`.
  Result<void> RequestStaging(const RenameArgs& a, Layer to, RenameNeeds* need);
  Result<void> PublishTree(RenameArgs& a, StagedTree& staged);
  // RENAME_EXCHANGE of two entries that must change layers: both copied
  // aside, then one recorded change clears both names and publishes both.
  Result<void> ExchangeAcross(RenameArgs& a, Layer to1, Layer to2, RenameNeeds& have,
                              RenameNeeds* need);
  // After `x` landed at `path` on `to` (its directory `root_fd` there):
  // it and the nodes the kernel holds beneath it are bound to their copies,
  // and their open files follow.
  Result<void> RebindMoved(Node* x, Layer to, int root_fd);
  // RebindMoved's two halves: `x` itself (its lock held), then, for a
  // directory, the nodes within (no lock held).
  Result<void> RebindRoot(Node* x, Layer to, int root_fd) REQUIRES(x->content_mu);
  Result<void> RebindWithin(Node* x, Layer to, int root_fd);
  // The route of `name` in a directory at `dir_path` whose own route is
  // `dir_route` (for walks of trees no node stands for).
  ChildRoute RouteOfPath(const std::string& dir_path, int dir_route, std::string_view name);

  // --- merged_listing.cc ---
  // The merged names of `dir` (caller holds its dir_mu), "." and ".." not
  // included.
  Result<std::vector<MergedName>> ListMerged(Node* dir);
  Result<bool> IsEmpty(Node* dir);
  // Whether the tier directory `name` in `dirfd` holds anything but
  // whiteouts: when the merged directory is empty, content no rule serves
  // there, set aside rather than deleted when the directory goes.
  static bool HoldsUnservedContent(int dirfd, const std::string& name);
  // Steps that set aside, to their tiers' kept/, what `staged` found no
  // rule serves in the tree at `path` (before its tier parts go).
  // Whether the directory `tier` holds under `served`'s name (in the
  // directory at `dir_path` whose parts are `fds`) is part of the
  // directory a tree walk serves there.
  bool PartOfServedDir(const std::array<int, kLayerCount>& fds, const std::string& dir_path,
                       int dir_route, const WalkItem& served, Layer tier);
  static void SetAsideUnserved(const StagedTree& staged, const std::string& path, Intent* intent);
  // An unrouted directory (its attributes are its volume part's) whose
  // entries changed on a tier only — a routed name made, removed or renamed
  // in it: its volume part's mtime (and so ctime) set to now, as any
  // filesystem does for a changed directory (review 2026-12-07 #6). The
  // part is found under the directory's lock (taken with no other node's
  // lock held: never a child's then its parent's), touched after.
  SharedFd VolumePartToTouch(Node* dir);
  static void TouchVolumePart(const SharedFd& part);
  static bool SpansLayers(const Binding& b);
  Result<void> ReadStream(DirHandle& dh, off_t offset, bool plus,
                          const std::function<bool(const DirEntry&)>& emit) REQUIRES(dh.mu);
  Result<void> ReadMerged(DirHandle& dh, off_t offset, bool plus,
                          const std::function<bool(const DirEntry&)>& emit) REQUIRES(dh.mu);

  const OverlayOptions options_;
  const Router router_;
  std::unique_ptr<ChangeLayer> changes_;
  std::unique_ptr<IdSource> ids_;
  InodeTable table_;
  FdCache cache_;
  Resolver resolver_;
  MoveGate gate_;
  std::array<std::unique_ptr<TierSpace>, kLayerCount> spaces_;
  const dev_t volume_dev_;
  std::vector<TierSpec> tier_specs_;

  // Volume files on other filesystems mounted inside the volume, and volume
  // inode numbers beyond the id range: the ids given them (not persistent).
  Mutex foreign_mu_;
  std::unordered_map<std::string, uint64_t> foreign_ GUARDED_BY(foreign_mu_);
  // Ids with an index entry, per tier.
  Mutex index_mu_;
  std::array<std::unordered_set<uint64_t>, kLayerCount> indexed_ GUARDED_BY(index_mu_);
  // Renames that change several layers at once (their intent phase) take
  // this exclusively, every other rename of a directory shared: paths in an
  // intent record stay true while it runs. Held only for a few renames,
  // never across a copy.
  RwLock renames_mu_;
  // Handles given out and not released: the kernel stops releasing them
  // when the session ends, and they are freed with the overlay.
  Mutex handles_mu_;
  std::unordered_set<FileHandle*> files_ GUARDED_BY(handles_mu_);
  std::unordered_set<DirHandle*> dirs_ GUARDED_BY(handles_mu_);
};

}  // namespace detourfs
