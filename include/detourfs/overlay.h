// Overlay: the namespace the mount serves, as calls that take nodes and names
// and return Results. The FUSE adapters unpack a request, call one method and
// reply; everything else lives here and below.
//
// Layers: the volume (the lower directory), where unrouted names pass
// straight through, and the memory and disk tiers, whose upper trees routed
// subtrees live in, overlaid on the volume (copy-up, whiteouts, opaque
// directories, merged listings, moves across layers, capacity and spills).
// docs/overlay.md describes the behaviour; the .cc files split it by concern.
//
// Ownership: nodes belong to the InodeTable. A method returning an Entry has
// taken one lookup reference on entry.node for the kernel; the adapter must hand
// the entry to the kernel or call Forget(entry.node->id(), 1).
//
// All methods are thread-safe. The daemon runs as root; files created here are
// given to the calling process's uid/gid (setgid directories respected) and
// created under the caller's umask, so default POSIX ACLs apply as on a local
// filesystem.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "detourfs/inode_table.h"
#include "detourfs/result.h"
#include "detourfs/unique_fd.h"
#include "overlay/layer_lock.h"
#include "route/router.h"

namespace detourfs {

class Resolver;
class FdCache;
class TierSpace;
class SpillStore;
class MoveIntents;

// Copies the file `src` (an O_PATH fd with stat `st`) to `name` in `dirfd`:
// a regular file's data (unnamed until complete), owner, mode, xattrs and
// times; a symlink's target; a device or fifo. For copy-up and moves across
// layers (overlay_route.cc).
Result<void> CopyNodeInto(int src, const struct stat& st, int dirfd, const char* name);
// The inode number a file copied up from the volume recorded
// (markers::kOriginXattr on `fd`, O_PATH is fine); 0 if none.
uint64_t OriginIno(int fd);
// Copies the xattrs of `from` to `to` (both O_PATH fds), reserved ones and
// those the target refuses as unsupported excepted.
Result<void> CopyXattrs(int from, int to);
// Copies the data of `in` to `out` (open fds, from their current offsets),
// sparse-unaware; across filesystems by plain reads and writes.
Result<void> CopyData(int in, int out);

// The process making a request.
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  mode_t umask = 022;
};

// A node with the attributes to report for it.
struct Entry {
  Node* node = nullptr;
  struct stat attr {};
};

// An open regular file. `fd` is a real (not O_PATH) fd on the backing file.
// A request using `fd` holds `mu` shared; moving the file to another layer
// (a spill from a full tier) holds it exclusively while it copies the data
// and points `fd` at the new file, so no write lands in the old copy.
struct FileHandle {
  Node* node = nullptr;
  SharedFd fd;  // guarded by mu
  bool writable = false;
  std::shared_mutex mu;
};

// One name of a merged directory listing (a directory spanning layers).
struct MergedName {
  std::string name;
  ino_t ino = 0;
  mode_t type = 0;  // S_IFMT bits
};

// An open directory: a real fd and the getdents position within it. A
// directory that spans layers is listed from a snapshot of its merged names
// taken when reading starts at offset 0; offsets index the snapshot, so they
// stay valid however the directory changes meanwhile.
struct DirHandle {
  Node* node = nullptr;
  UniqueFd fd;
  std::mutex mu;
  std::vector<char> buf;  // guarded by mu: entries read but not yet returned
  size_t buf_pos = 0;
  size_t buf_len = 0;
  off_t offset = 0;  // guarded by mu: the offset the next buffered entry has
  bool merged = false;
  std::vector<MergedName> names;  // guarded by mu, when merged
};

// One directory entry for ReadDir. `entry` is set in plus mode, except for
// "." and "..", which are never looked up.
struct DirEntry {
  std::string_view name;
  ino_t ino = 0;
  mode_t type = 0;  // S_IFMT bits
  off_t next_offset = 0;
  std::optional<Entry> entry;
};

// Which attributes SetAttr changes; a time's tv_nsec may be UTIME_NOW.
struct SetAttrRequest {
  std::optional<mode_t> mode;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<off_t> size;
  std::optional<struct timespec> atime;
  std::optional<struct timespec> mtime;
  // Clear S_ISUID, and S_ISGID if the group may execute, as a write,
  // truncate or chown by a caller without CAP_FSETID does (regular files).
  bool kill_suidgid = false;
};

struct OverlayOptions {
  size_t fd_cache_capacity = 4096;
  // The kernel caches pages (FUSE writeback cache): files opened write-only
  // are opened read-write below, and O_APPEND is left to the kernel.
  bool writeback_cache = true;
  // Seconds "this directory has no side on that layer" is trusted without
  // looking again (as the kernel trusts "no such name"; 0: never cached).
  double negative_timeout = 60.0;
};

// A tier the overlay serves routed subtrees from: its layer, an O_PATH fd
// on the root of its upper tree (which mirrors the mount's paths), and how
// much it may hold (0: its filesystem's size).
struct OverlayTier {
  Layer layer = Layer::kMemory;
  UniqueFd upper;
  // The disk tier's spill store (spill_store.h), where memory routes that
  // fall back to disk spill their files' data; ignored for the memory tier.
  UniqueFd spill;
  // Where moves across layers record themselves while they run
  // (move_intents.h); the disk tier's is used when given, else the memory
  // tier's.
  UniqueFd moves;
  uint64_t capacity = 0;
  double high_watermark = 0.90;
};

class Overlay {
 public:
  // `lower_fd`: an O_PATH | O_DIRECTORY fd on the volume's root, opened before
  // the mount hid it. `router` decides which paths live on which of `tiers`
  // (every tier a rule names must be given).
  static Result<std::unique_ptr<Overlay>> Open(UniqueFd lower_fd, const OverlayOptions& options,
                                               std::vector<OverlayTier> tiers = {},
                                               Router router = {});
  ~Overlay();

  Overlay(const Overlay&) = delete;
  Overlay& operator=(const Overlay&) = delete;

  InodeTable& table() { return *table_; }
  size_t cached_fds() const;

  // Namespace.
  Result<Entry> Lookup(uint64_t parent, std::string_view name);
  void Forget(uint64_t ino, uint64_t nlookup);
  Result<Entry> Mknod(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                      const Caller& caller);
  Result<Entry> Mkdir(uint64_t parent, std::string_view name, mode_t mode, const Caller& caller);
  Result<Entry> Symlink(std::string_view target, uint64_t parent, std::string_view name,
                        const Caller& caller);
  Result<Entry> Link(uint64_t ino, uint64_t new_parent, std::string_view new_name);
  Result<void> Unlink(uint64_t parent, std::string_view name);
  Result<void> Rmdir(uint64_t parent, std::string_view name);
  // `flags`: 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
  Result<void> Rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                      std::string_view new_name, unsigned int flags);

  // Attributes. `fh` is the open file the kernel named, if any.
  Result<struct stat> GetAttr(uint64_t ino, FileHandle* fh);
  Result<struct stat> SetAttr(uint64_t ino, const SetAttrRequest& req, FileHandle* fh);
  // SetAttr with only kill_suidgid: before a write, or after an open that
  // truncated, by a caller without CAP_FSETID.
  Result<void> KillSuidgid(uint64_t ino, FileHandle* fh);
  Result<std::string> Readlink(uint64_t ino);
  Result<void> Access(uint64_t ino, int mask, const Caller& caller);
  Result<struct statvfs> StatFs(uint64_t ino);

  // Files.
  Result<std::unique_ptr<FileHandle>> Open(uint64_t ino, int flags);
  // Creates and opens `name`; without O_EXCL a file that exists is opened
  // (and, with `kill_suidgid` — an O_TRUNC by a caller without CAP_FSETID —
  // loses setuid and setgid as Open's caller would make it).
  Result<std::pair<Entry, std::unique_ptr<FileHandle>>> Create(uint64_t parent,
                                                               std::string_view name, mode_t mode,
                                                               int flags, const Caller& caller,
                                                               bool kill_suidgid = false);
  void Release(std::unique_ptr<FileHandle> fh);
  // Writes `size` bytes at `off` through `write(fd, off, size)` (which
  // returns bytes written or -errno, and continues where it stopped when
  // called again). A tier that is full or at its capacity does not fail the
  // write: the file spills to the volume and the write goes on there.
  using WriteFn = std::function<ssize_t(int fd, off_t off, size_t size)>;
  // The handle's fd now (a spill may point the handle at another file later).
  SharedFd FdOf(FileHandle& fh) const;
  Result<size_t> Write(FileHandle& fh, off_t off, size_t size, const WriteFn& write);
  void ReleaseDir(std::unique_ptr<DirHandle> dh);
  Result<void> Fsync(FileHandle& fh, bool datasync);
  Result<void> Fallocate(FileHandle& fh, int mode, off_t offset, off_t length);
  Result<size_t> CopyFileRange(FileHandle& in, off_t off_in, FileHandle& out, off_t off_out,
                               size_t len, unsigned int flags);
  Result<off_t> Lseek(FileHandle& fh, off_t off, int whence);

  // Directories. ReadDir calls `emit` for each entry from `offset` on until it
  // returns false (no room): in plus mode that entry's lookup is undone.
  Result<std::unique_ptr<DirHandle>> OpenDir(uint64_t ino);
  Result<void> ReadDir(DirHandle& dh, off_t offset, bool plus,
                       const std::function<bool(const DirEntry&)>& emit);
  Result<void> FsyncDir(DirHandle& dh, bool datasync);

  // Extended attributes (POSIX ACLs are system.posix_acl_* xattrs). With
  // size 0, Get/List return the size needed.
  Result<size_t> GetXattr(uint64_t ino, const char* name, void* value, size_t size);
  Result<size_t> ListXattr(uint64_t ino, char* list, size_t size);
  // `kill_sgid`: the caller may not keep S_ISGID when setting the access
  // ACL (outside the file's group, without CAP_FSETID): it is cleared.
  Result<void> SetXattr(uint64_t ino, const char* name, const void* value, size_t size, int flags,
                        bool kill_sgid = false);
  Result<void> RemoveXattr(uint64_t ino, const char* name);

 private:
  Overlay(const OverlayOptions& options, std::unique_ptr<InodeTable> table,
          std::unique_ptr<FdCache> cache, std::unique_ptr<Resolver> resolver, dev_t root_dev,
          Router router);

  // At start: removes the partial copies of moves across layers that a
  // daemon stopped in the middle of (move_intents.h).
  void RecoverMoves();
  // Records a move across layers about to build `hidden` in `dir` (on
  // `layer`); the record's name, or "" when it cannot be made (logged: the
  // move goes on, and a crash in it would leave its copy in sight).
  std::string BeginMove(Node* dir, Layer layer, const std::string& hidden);
  void EndMove(const std::string& record);
  // At start: logs what `layer`'s tier holds that the rules no longer route
  // to it (unrouted_content.h).
  void ReportUnroutedContent(Layer layer);
  // Routing (overlay_route.cc). The route of child `name` of `parent`: the
  // parent's when it is routed, else the first rule matching the child's path.
  int ChildRoute(Node* parent, std::string_view name, bool is_dir);
  // The tier a route sends data to; kVolume for no route or a volume route.
  Layer TierOf(int route) const;
  // Lookup of a child routed to tier `tier`: its upper entry, unless a
  // whiteout hides it, else the volume's unless the parent is opaque.
  // Create's answer for a name a routed directory already has.
  Result<std::pair<Entry, std::unique_ptr<FileHandle>>> OpenExistingRouted(Node* parent,
                                                                           std::string_view name,
                                                                           int flags,
                                                                           bool kill_suidgid);
  // The attributes of file `ino` just opened through `fh`; with
  // `kill_suidgid` (an O_TRUNC by a caller without CAP_FSETID) after setuid
  // and setgid were cleared, as SetAttr clears them.
  Result<struct stat> OpenedAttr(uint64_t ino, FileHandle* fh, bool kill_suidgid);
  // What a node that lost its fd and every name (past the orphan budget)
  // answers, when resolving it failed with `error`.
  Result<struct stat> LastAttrOf(Node* node, int error);
  // `whiteout`, if given, is set when the tier holds a whiteout by that name.
  Result<Entry> LookupRouted(Node* parent, std::string_view name, int route, Layer tier,
                             bool* whiteout = nullptr);
  // The parent's directory on `tier`, made (with the volume directory's
  // mode, owner and xattrs) along with any missing ancestors.
  Result<SharedFd> EnsureUpperDir(Node* dir, Layer tier);
  // Moves a routed node still on the volume to its tier: data, mode, owner,
  // times, xattrs. Its node id stays. No-op for nodes already up.
  // `data_to_store`: a file's data goes to the spill store instead, its name
  // on the (full memory) tier to a stub (CopyUpToStore).
  Result<void> CopyUp(Node* node, bool data_to_store = false);
  // Pins the inode number a tier file copied up from the volume recorded
  // (`name` in `dirfd`), for a node just created for it.
  void KeepOrigin(Node* node, int dirfd, const char* name);
  // During copy-up of a file with several names: links the copy (`first_name`
  // in `first_dir`) under each other name in `locs`, when all are routed to
  // `tier`.
  Result<void> LinkUpOtherNames(Node* node, const std::vector<Location>& locs, int first_dir,
                                const char* first_name, Layer tier);
  // Whether `node` needs a copy-up before it changes.
  bool NeedsCopyUp(Node* node) const;
  // st_nlink 1 for a directory whose entries span layers.
  void MergedDirLinks(Node* node, struct stat& st);
  Result<void> CopyUpIno(uint64_t ino);
  // The merged names of a directory spanning layers, or false in `merged`
  // when it lives on one layer only.
  Result<void> ListMerged(Node* dir, bool* merged, std::vector<MergedName>* names);
  Result<void> ReadMerged(DirHandle& dh, off_t offset, bool plus,
                          const std::function<bool(const DirEntry&)>& emit);
  // Remove / rename of names in a routed directory.
  Result<void> RemoveRouted(Node* parent, std::string_view name, int flags, int route, Layer tier);
  Result<void> RenameRouted(Node* parent, std::string_view name, Node* new_parent,
                            std::string_view new_name, unsigned int flags);
  // After `node` was renamed: the table follows, with the route of the new
  // path; a directory's cached paths below it go.
  void Renamed(Node* node, Node* parent, std::string_view name, Node* new_parent,
               std::string_view new_name, int dst_route);
  // Before a name of `node` (a routed file still on the volume) goes: if the
  // file has other names, brings it up with all of them, or — the tier full —
  // removes that name on the volume itself (true). False: nothing to do.
  Result<bool> DropVolumeLink(Node* node, Node* parent, std::string_view name);
  // After a directory was renamed to `name` in `parent` on its tier (whose
  // directory there is `upper_parent`): its subdirectories whose new paths
  // the volume has become opaque (HideVolumeBeneath).
  Result<void> HideVolumeAt(Node* parent, const std::string& name, int upper_parent);
  // Whether a directory has no entries in the merged view.
  Result<bool> IsEmptyDir(Node* dir);
  // Moves the tier parts (scaffolding and routed subtrees) of a volume
  // directory being renamed; `flags` as rename's (RENAME_EXCHANGE swaps).
  Result<void> CarryTierParts(Node* parent, std::string_view name, Node* new_parent,
                              std::string_view new_name, unsigned int flags);
  // Copies a routed directory's whole volume part up and marks it opaque.
  // ENOSPC when it does not fit within the tier's capacity.
  Result<void> DeepCopyUp(Node* dir);
  // CopyUp of a file, ENOSPC when it would take `tier` past its capacity.
  Result<void> CopyUpWithin(Node* node, Layer tier);
  // Rename of a routed directory within its tier when its volume part does
  // not fit there: the tier's part and the volume's part each move with a
  // rename on their own layer (a crash between the two leaves the content
  // split across the two names, nothing lost).
  Result<void> RenameDirOnBothLayers(Node* node, Node* parent, std::string_view name,
                                     Node* new_parent, std::string_view new_name, Layer tier,
                                     int dst_route);
  // Moves a non-directory between layers: copied to the destination layer,
  // then the source name removed (whiteout where the volume still has it).
  Result<void> MoveAcross(Node* node, Node* parent, std::string_view name, Node* new_parent,
                          std::string_view new_name, int dst_route, Layer dst_tier,
                          const Entry* dst);
  // Moves a directory between layers (overlay_move_tree.cc): its merged
  // tree copied under a hidden name on the destination layer, renamed into
  // place, then the source removed; its nodes follow. `dst` is the empty
  // directory it replaces, if any.
  Result<void> MoveDirAcross(Node* node, Node* parent, std::string_view name, Node* new_parent,
                             std::string_view new_name, int dst_route, Layer dst_tier,
                             const Entry* dst);
  struct TreeCopy;
  Result<void> CopyTreeInto(Node* dir, int dirfd, const char* name, TreeCopy* copy);
  // The names of a directory in the merged view.
  Result<std::vector<std::string>> ChildNames(Node* dir);
  // Removes `name` from `parent` on every layer: the tiers' parts, and the
  // volume's (a whiteout instead when the name is routed).
  Result<void> RemoveEverywhere(Node* parent, std::string_view name, int route);
  // For RemoveTreeAt: nodes bound to the files removed let go of them.
  std::function<void(int, const char*, const struct stat&)> Unbinder();
  // Capacity (overlay_spill.cc). Whether an errno says a filesystem is
  // full: out of blocks, or of the owner's quota.
  static bool IsFull(int err) { return err == ENOSPC || err == EDQUOT; }
  // The space of a tier, null for the volume.
  TierSpace* SpaceOf(Layer layer) const;
  // Moves a file from its full tier on along its route's fallback chain: a
  // memory file's data to the disk tier's spill store (SpillToStore), else
  // the file to the volume (same path, parents made); every open handle is
  // pointed at the new file. ENOSPC when it cannot (a directory, a file with
  // several links, one no longer named). `full`: the layer the caller found
  // full (DataLayer); nothing to do if the file moved on from it meanwhile.
  Result<void> Spill(Node* node, Layer full);
  // Spill store (overlay_spill_store.cc). Whether `route` (a memory route)
  // falls back to the disk tier before the volume.
  bool FallsBackToDisk(int route) const;
  // The layer whose space a node's data takes: the disk tier for a spilled
  // file, else its own.
  Layer DataLayer(Node* node) const;
  // Moves a memory file's data to the spill store; its file stays, emptied,
  // as the stub that keeps its names and inode number. ENOSPC when the disk
  // tier is full too or the file has several links. Requires names_mu_ and
  // copy_up_mu_.
  Result<void> SpillToStore(Node* node);
  // LookupRouted of `name` in the tier directory `dirfd`, whose stat `st`
  // may be a spilled file's stub: the entry for it with its data's
  // attributes, or nullopt when it is an ordinary file.
  Result<std::optional<Entry>> LookupSpilled(Node* parent, std::string_view name, int dirfd,
                                             const struct stat& st, Layer tier, int route);
  // Removes the store's data of `token`, logging a failure (a leftover is
  // removed at the next start).
  void DropSpilledData(uint64_t token);
  // For RemoveTreeAt on a tier: the store's data of each stub removed goes
  // with it.
  std::function<void(int, const char*, const struct stat&)> SpilledDataDropper();
  // A spilled file's link count is its stub's: `st` (its data's attributes)
  // is given it.
  void SpilledLinks(Node* node, struct stat& st);
  // Link of a spilled file: its stub gets the new name `new_name` in `dirfd`
  // (on `layer`, under `route`).
  Result<Entry> LinkSpilled(Node* node, Node* new_parent, std::string_view new_name, int dirfd,
                            Layer layer, int route);
  // For CopyUp into a full memory tier: copies the volume file `src` (stat
  // `st`) into the spill store, then makes its stub `name` in `dirfd`.
  // Returns the data's token.
  Result<uint64_t> CopyUpToStore(int src, const struct stat& st, int dirfd, const char* name);
  // At start: removes store data no stub on the memory tier refers to (left
  // by a crash, or a memory tier emptied by a reboot). Returns how many.
  Result<size_t> CollectSpillGarbage();
  // Spill of a file unlinked while open (`src`, stat `st`): to an unnamed
  // file on the disk tier's filesystem (a memory file falling back to it)
  // or the volume's.
  Result<void> SpillUnnamed(Node* node, const UniqueFd& src, const struct stat& st);
  // An unnamed copy (O_TMPFILE in `dirfd`'s filesystem) of `src`: data,
  // mode, owner.
  Result<UniqueFd> CopyUnnamed(const UniqueFd& src, const struct stat& st, int dirfd);
  // Copy-up before a change, unless the tier is full: then the file is
  // changed where it is, on the volume.
  Result<void> PrepareChange(Node* node);
  // The volume's directory for routed `parent`, ready to serve `name` from
  // the volume: nothing on `tier` hides it (an opaque parent or ancestor
  // becomes whiteouts, a whiteout goes), and a stale volume entry under the
  // name, which the tier hid, is removed.
  Result<SharedFd> VolumeSideOf(Node* parent, const std::string& name, Layer tier);
  // The volume's directory for `dir`, made (like its tier copy) with any
  // missing ancestors.
  Result<SharedFd> EnsureLowerDir(Node* dir);
  // Open handles held still while their file moves between layers: taken
  // under handles_mu_ (so none is released meanwhile), each exclusively.
  struct HeldHandles {
    std::vector<FileHandle*> handles;
    std::vector<std::unique_lock<std::shared_mutex>> locks;
  };
  // Adds the open handles of `node` to `held`, locked. Requires handles_mu_.
  void HoldHandles(Node* node, HeldHandles* held);
  // Points the held handles of `node` at its backing file now (after a move),
  // with the same access mode and flags. Requires handles_mu_.
  Result<void> RepointHandles(Node* node, HeldHandles& held);
  // Makes an opaque upper directory transparent again: a whiteout for each
  // volume entry it hid, then the marker goes.
  Result<void> UnhideVolume(Node* dir, int upper_fd);
  // Rename, the caller holding names_mu_.
  Result<void> RenameHeld(uint64_t parent, std::string_view name, uint64_t new_parent,
                          std::string_view new_name, unsigned int flags);
  // RENAME_EXCHANGE where either name is routed.
  Result<void> ExchangeRouted(Node* parent, std::string_view name, Node* new_parent,
                              std::string_view new_name);

  Result<Node*> NodeOf(uint64_t ino);
  Result<SharedFd> FdOf(Node* node);
  Result<SharedFd> FdOf(Node* node, Layer layer);
  // The open file's fd when the kernel named one, else the node's; the
  // caller holds HoldBacking(fh).
  Result<SharedFd> FdOf(Node* node, FileHandle* fh);
  // Keeps the backing file a request acts on in place: the handle's lock
  // when the kernel named an open file, else the layer lock, shared.
  struct BackingHold {
    std::shared_lock<std::shared_mutex> handle;
    std::optional<LayerLock::Hold> layers;
  };
  BackingHold HoldBacking(FileHandle* fh);
  // The fd whose xattrs `ino` has: null for a symlink, which has none here.
  Result<SharedFd> XattrFd(uint64_t ino);
  // The reported inode number: the backing one, mixed with the device when a
  // file lives on another filesystem mounted inside the lower directory.
  void ReportIno(struct stat& st) const;
  // The attributes to report for `node`: its pinned inode number if it has
  // one (kept across copy-up), else as ReportIno.
  void Report(Node* node, struct stat& st) const;
  Result<Entry> Found(Node* parent, std::string_view name, UniqueFd fd, struct stat st,
                      Layer layer = Layer::kVolume, int route = kNotRouted);
  // Looks `name` up in `parent` (whose fd is `parent_fd`) with one fstatat.
  Result<Entry> Stat(Node* parent, int parent_fd, std::string_view name);
  // Gives a node just created by root to the caller (uid, gid per setgid rule).
  Result<void> GiveToCaller(int fd, int parent_fd, const Caller& caller, struct stat& st);
  template <typename MakeFn>
  Result<Entry> MakeNode(uint64_t parent, std::string_view name, const Caller& caller, MakeFn make,
                         bool is_dir);
  // Where a new child goes: the directory fd to create it in (the volume's,
  // or the tier's upper directory, made if needed), its layer and route, and
  // whether a new directory must be opaque (it replaces a whiteout). EEXIST
  // when the merged view already has the name.
  struct Placement {
    SharedFd dir;
    Layer layer = Layer::kVolume;
    int route = kNotRouted;
    bool opaque = false;
  };
  Result<Placement> PlaceNew(Node* parent, std::string_view name, bool is_dir);
  Result<void> Remove(uint64_t parent, std::string_view name, int flags);
  // A file about to lose a name: an O_PATH fd on it and its stat.
  struct Victim {
    UniqueFd fd;
    struct stat st {};
  };
  Result<Victim> OpenVictim(int dirfd, const char* name);
  // After `name` in `parent` stopped naming victim's file: keeps its fd if
  // that was the file's last link.
  void KeepIfLastLink(Node* parent, std::string_view name, Victim victim);
  // The victim of an unlink or rename, when it is a stub losing its last
  // name: its data leaves the store (open fds keep it) and stands in for it.
  void ReleaseSpilled(Victim* victim);
  // The stub of spilled `node`, found by one of its names: an O_PATH fd and
  // its stat.
  Result<Victim> StubOf(Node* node);
  // The file a rename replaces (`dst`, `new_name` in `new_parent`; none when
  // null), to hold like an unlinked one: on the destination's layer
  // (`dirfd`), or on the volume beneath a tier, where it stays hidden until
  // removed, its node bound to it until then.
  Result<Victim> OpenReplaced(const Entry* dst, Node* new_parent, const std::string& new_name,
                              int dirfd);

  // Handles given out and not yet released. The kernel releases them
  // asynchronously, and not at all once the session ends: what is left is
  // freed with the overlay.
  void Track(FileHandle* fh);
  void Track(DirHandle* dh);
  std::mutex handles_mu_;
  std::unordered_set<FileHandle*> files_;
  std::unordered_set<DirHandle*> dirs_;

  const OverlayOptions options_;
  const Router router_;
  // Requests that change names (create, link, unlink, rename...) hold this
  // shared; a spill, which moves every name of a file to the volume, holds
  // it exclusively, so a name cannot go or change while its file spills
  // (writeback sends the WRITE that spills concurrently with the writer's
  // next unlink or rename). Taken before every other overlay lock.
  std::shared_mutex names_mu_;
  std::mutex copy_up_mu_;  // one copy-up at a time
  LayerLock layers_;       // nodes stay on their layers (layer_lock.h)
  std::unique_ptr<InodeTable> table_;
  std::unique_ptr<FdCache> cache_;
  std::unique_ptr<Resolver> resolver_;
  const dev_t root_dev_;
  std::array<std::unique_ptr<TierSpace>, 3> spaces_;  // by Layer; none for the volume
  std::unique_ptr<SpillStore> spill_store_;           // the disk tier's, if configured
  std::unique_ptr<MoveIntents> move_intents_;         // null without tiers
};

}  // namespace detourfs
