// Overlay: construction, lookup and forget, attributes.
#include "detourfs/overlay.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "detourfs/status.h"
#include "inodes/fd_cache.h"
#include "inodes/resolver.h"
#include "overlay/backing_tree.h"
#include "overlay/unrouted_content.h"
#include "store/move_intents.h"
#include "store/spill_store.h"
#include "store/tier_space.h"
#include "sys/sys.h"

namespace detourfs {

Result<std::unique_ptr<Overlay>> Overlay::Open(UniqueFd lower_fd, const OverlayOptions& options,
                                               std::vector<OverlayTier> tiers, Router router) {
  Result<struct stat> st = sys::Fstat(lower_fd.get());
  if (!st.ok()) return Errno{st.error()};
  if (!S_ISDIR(st->st_mode)) return Errno{ENOTDIR};
  auto table = std::make_unique<InodeTable>(*st);
  // Removed files the kernel still holds get as many fds as the cache.
  table->SetOrphanBudget(options.fd_cache_capacity);
  auto cache = std::make_unique<FdCache>(options.fd_cache_capacity);
  auto resolver = std::make_unique<Resolver>(
      *table, *cache, std::make_shared<const UniqueFd>(std::move(lower_fd)),
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(options.negative_timeout)));
  std::array<std::unique_ptr<TierSpace>, 3> spaces;
  std::unique_ptr<SpillStore> spill_store;
  std::unique_ptr<MoveIntents> move_intents;
  for (OverlayTier& tier : tiers) {
    if (tier.moves.get() >= 0 && (move_intents == nullptr || tier.layer == Layer::kDisk)) {
      move_intents =
          std::make_unique<MoveIntents>(std::make_shared<const UniqueFd>(std::move(tier.moves)));
    }
    auto upper = std::make_shared<const UniqueFd>(std::move(tier.upper));
    resolver->SetLayerRoot(tier.layer, upper);
    auto space = std::make_unique<TierSpace>(upper, tier.capacity, tier.high_watermark);
    if (tier.layer == Layer::kDisk && tier.spill.get() >= 0) {
      spill_store =
          std::make_unique<SpillStore>(std::make_shared<const UniqueFd>(std::move(tier.spill)));
      resolver->SetSpillStore(spill_store.get());
    }
    if (space->MayShareFilesystem()) {
      // A capacity on a filesystem holding more than the tier (a node's
      // disk): the tier's usage is what its trees take, not the whole disk's.
      Result<uint64_t> own = DiskUsage(upper->get());
      if (own.ok() && tier.layer == Layer::kDisk && spill_store) {
        Result<uint64_t> spilled = DiskUsage(spill_store->dir());
        own = spilled.ok() ? Result<uint64_t>(*own + *spilled) : spilled;
      }
      Result<void> set = own.ok() ? space->SetOwnUsage(*own) : Result<void>(Errno{own.error()});
      if (!set.ok()) {
        spdlog::warn("tier {}: cannot measure what it holds ({}); its filesystem's usage counts",
                     tier.layer == Layer::kMemory ? "memory" : "disk", ErrnoText(set.error()));
      }
    }
    spaces[static_cast<size_t>(tier.layer)] = std::move(space);
  }
  for (const RouteRule& rule : router.rules()) {
    Layer need = rule.tier == TierId::kMemory ? Layer::kMemory
                 : rule.tier == TierId::kDisk ? Layer::kDisk
                                              : Layer::kVolume;
    if (!resolver->HasLayer(need)) return Errno{EINVAL};  // a rule names a tier not given
  }
  auto overlay =
      std::unique_ptr<Overlay>(new Overlay(options, std::move(table), std::move(cache),
                                           std::move(resolver), st->st_dev, std::move(router)));
  overlay->spaces_ = std::move(spaces);
  overlay->spill_store_ = std::move(spill_store);
  overlay->move_intents_ = std::move(move_intents);
  overlay->RecoverMoves();
  if (Result<size_t> gone = overlay->CollectSpillGarbage(); !gone.ok()) {
    spdlog::warn("spill store: leftovers not collected: {}", ErrnoText(gone.error()));
  } else if (*gone > 0) {
    spdlog::info("spill store: removed {} spilled files no stub refers to", *gone);
  }
  for (Layer layer : {Layer::kMemory, Layer::kDisk}) {
    if (overlay->resolver_->HasLayer(layer)) overlay->ReportUnroutedContent(layer);
  }
  return overlay;
}

void Overlay::RecoverMoves() {
  if (move_intents_ == nullptr) return;
  auto pending = move_intents_->Pending();
  if (!pending.ok()) {
    spdlog::warn("moves across layers: cannot read the records of unfinished ones: {}",
                 ErrnoText(pending.error()));
    return;
  }
  for (const auto& [record, intent] : *pending) {
    const std::string where =
        intent.parent.empty() ? intent.hidden : intent.parent + "/" + intent.hidden;
    if (!resolver_->HasLayer(intent.layer)) {
      spdlog::warn("an unfinished move left '{}' on a tier the config no longer has", where);
      continue;
    }
    const int root = resolver_->layer_root(intent.layer)->get();
    Result<UniqueFd> dir = sys::OpenBeneath(
        root, intent.parent.empty() ? "." : intent.parent.c_str(), O_PATH | O_DIRECTORY);
    Result<void> removed = dir.ok() ? RemoveTreeAt(dir->get(), intent.hidden.c_str())
                                    : Result<void>(Errno{dir.error()});
    if (removed.ok()) {
      spdlog::info(
          "removed '{}' ({}), the partial copy of a move across layers the daemon "
          "stopped in the middle of",
          where, LayerName(intent.layer));
    } else if (removed.error() != ENOENT) {
      spdlog::warn("the partial copy '{}' ({}) of an unfinished move stays: {}", where,
                   LayerName(intent.layer), ErrnoText(removed.error()));
      continue;
    }
    move_intents_->End(record);
  }
}

std::string Overlay::BeginMove(Node* dir, Layer layer, const std::string& hidden) {
  if (move_intents_ == nullptr) return "";
  bool ok = false;
  MoveIntent intent{layer, table_->PathOf(dir, &ok), hidden};
  Result<std::string> record = ok ? move_intents_->Begin(intent) : Errno{ESTALE};
  if (!record.ok()) {
    spdlog::warn("move across layers: no record of '{}' ({}); a crash in it would leave it: {}",
                 hidden, LayerName(layer), ErrnoText(record.error()));
    return "";
  }
  return *record;
}

void Overlay::EndMove(const std::string& record) {
  if (!record.empty()) move_intents_->End(record);
}

void Overlay::ReportUnroutedContent(Layer layer) {
  const TierId tier = layer == Layer::kMemory ? TierId::kMemory : TierId::kDisk;
  const std::string_view name = TierName(tier);
  Result<std::vector<UnroutedEntry>> found =
      FindUnroutedContent(resolver_->layer_root(layer)->get(), tier, router_);
  if (!found.ok()) {
    spdlog::warn("tier {}: cannot check what it holds against the rules: {}", name,
                 ErrnoText(found.error()));
    return;
  }
  constexpr size_t kShown = 20;
  for (size_t i = 0; i < found->size() && i < kShown; ++i) {
    const UnroutedEntry& e = (*found)[i];
    const std::string what = e.whiteout        ? "the deletion of"
                             : S_ISDIR(e.type) ? "directory"
                                               : "file";
    const std::string now = e.rule_line == 0 ? "no rule routes it, so the volume's copy is served"
                                             : fmt::format("the rule at line {} routes it to {}",
                                                           e.rule_line, TierName(e.now));
    spdlog::error(
        "tier {} holds {} '{}', which the config no longer routes there ({}): it is not served "
        "until a rule routes it to {} again; it is kept as it is",
        name, what, e.path, now, name);
  }
  if (found->size() > kShown) {
    spdlog::error("tier {} holds {} more entries the config no longer routes there", name,
                  found->size() - kShown);
  }
}

Overlay::Overlay(const OverlayOptions& options, std::unique_ptr<InodeTable> table,
                 std::unique_ptr<FdCache> cache, std::unique_ptr<Resolver> resolver, dev_t root_dev,
                 Router router)
    : options_(options),
      router_(std::move(router)),
      table_(std::move(table)),
      cache_(std::move(cache)),
      resolver_(std::move(resolver)),
      root_dev_(root_dev) {}

Overlay::~Overlay() {
  for (FileHandle* fh : files_) delete fh;  // NOLINT: owned by a session now gone
  for (DirHandle* dh : dirs_) delete dh;    // NOLINT
}

void Overlay::Track(FileHandle* fh) {
  std::lock_guard lock(handles_mu_);
  files_.insert(fh);
}

void Overlay::Track(DirHandle* dh) {
  std::lock_guard lock(handles_mu_);
  dirs_.insert(dh);
}

void Overlay::ReleaseDir(std::unique_ptr<DirHandle> dh) {
  std::lock_guard lock(handles_mu_);
  dirs_.erase(dh.get());
}

size_t Overlay::cached_fds() const { return cache_->size(); }

Result<Node*> Overlay::NodeOf(uint64_t ino) {
  Node* node = table_->Find(ino);
  if (!node) return Errno{ESTALE};
  return node;
}

Result<SharedFd> Overlay::FdOf(Node* node) { return resolver_->Fd(node); }

Result<SharedFd> Overlay::FdOf(Node* node, Layer layer) { return resolver_->Fd(node, layer); }

Result<SharedFd> Overlay::FdOf(Node* node, FileHandle* fh) {
  if (fh) return fh->fd;
  return FdOf(node);
}

Overlay::BackingHold Overlay::HoldBacking(FileHandle* fh) {
  BackingHold hold;
  if (fh) {
    hold.handle = std::shared_lock(fh->mu);
  } else {
    hold.layers.emplace(layers_.Shared());
  }
  return hold;
}

void Overlay::ReportIno(struct stat& st) const {
  if (st.st_dev != root_dev_) {
    // Another filesystem is mounted inside the lower directory: its inode
    // numbers may repeat ours, so fold its device into the high bits.
    st.st_ino ^= static_cast<ino_t>(st.st_dev) << 40;
  }
}

void Overlay::Report(Node* node, struct stat& st) const {
  ReportIno(st);
  if (uint64_t pinned = node->ino(); pinned != 0) st.st_ino = static_cast<ino_t>(pinned);
}

Result<Entry> Overlay::Found(Node* parent, std::string_view name, UniqueFd fd, struct stat st,
                             Layer layer, int route) {
  Node* node = table_->Remember(parent, name, st, layer, route);
  resolver_->Prime(node, std::move(fd));
  Report(node, st);
  return Entry{node, st};
}

Result<Entry> Overlay::Stat(Node* parent, int parent_fd, std::string_view name) {
  // The kernel sends single components, never "." or ".."; refuse anything
  // else rather than resolve it.
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
    return Errno{EINVAL};
  }
  const std::string n(name);
  LayerLock::Hold layers = layers_.Shared();
  Result<struct stat> st = sys::StatAt(parent_fd, n.c_str());
  if (!st.ok()) return Errno{st.error()};
  // No fd is opened here: most names looked up (path walks, ls -l, find,
  // rm -rf) are never opened, and the resolver opens the rest on demand.
  const int route = router_.empty() ? kNotRouted : ChildRoute(parent, name, S_ISDIR(st->st_mode));
  Entry e{table_->Remember(parent, name, *st, Layer::kVolume, route), *st};
  Report(e.node, e.attr);
  return e;
}

Result<Entry> Overlay::Lookup(uint64_t parent_ino, std::string_view name) {
  Result<Node*> parent = NodeOf(parent_ino);
  if (!parent.ok()) return Errno{parent.error()};
  if (!router_.empty()) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
      return Errno{EINVAL};
    }
    const int route = ChildRoute(*parent, name, /*is_dir=*/true);
    const Layer tier = TierOf(route);
    if (tier != Layer::kVolume) return LookupRouted(*parent, name, route, tier);
  }
  Result<SharedFd> pfd = FdOf(*parent, Layer::kVolume);
  if (!pfd.ok()) return Errno{pfd.error()};
  return Stat(*parent, (*pfd)->get(), name);
}

void Overlay::Forget(uint64_t ino, uint64_t nlookup) {
  table_->Forget(ino, nlookup);
  // Node ids are never reused, so dropping the fd of a node that a racing
  // lookup brought back only costs that node a re-resolve.
  if (!table_->Find(ino)) resolver_->Drop(ino);
}

Result<struct stat> Overlay::GetAttr(uint64_t ino, FileHandle* fh) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  BackingHold hold = HoldBacking(fh);
  Result<SharedFd> fd = FdOf(*node, fh);
  if (!fd.ok()) return LastAttrOf(*node, fd.error());
  Result<struct stat> st = sys::Fstat((*fd)->get());
  if (st.ok()) {
    Report(*node, *st);
    if (!router_.empty()) MergedDirLinks(*node, *st);
    SpilledLinks(*node, *st);
  }
  return st;
}

Result<struct stat> Overlay::LastAttrOf(Node* node, int error) {
  std::optional<struct stat> st = error == ESTALE ? table_->LastAttr(node) : std::nullopt;
  if (!st) return Errno{error};
  Report(node, *st);
  return *st;
}

namespace {

// `st` with the changes `req` asks for, as the filesystem would make them.
struct stat Applied(const SetAttrRequest& req, struct stat st) {
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  auto time = [&now](const struct timespec& t) { return t.tv_nsec == UTIME_NOW ? now : t; };
  if (req.mode) st.st_mode = (st.st_mode & S_IFMT) | *req.mode;
  if (req.uid) st.st_uid = *req.uid;
  if (req.gid) st.st_gid = *req.gid;
  if (req.size) st.st_size = *req.size;
  if (req.atime && req.atime->tv_nsec != UTIME_OMIT) st.st_atim = time(*req.atime);
  if (req.mtime && req.mtime->tv_nsec != UTIME_OMIT) st.st_mtim = time(*req.mtime);
  st.st_ctim = now;
  return st;
}

// What the VFS does before a write by a caller without CAP_FSETID: S_ISUID
// goes, and S_ISGID when the group may execute (without g+x the bit marks
// mandatory locking, not a privilege). The daemon's own writes keep both (it
// has CAP_FSETID), so the kernel asks for this (kill_suidgid.h).
// `st` is the file's, and is brought up to date.
Result<void> ClearSuidgid(int f, bool open_fd, struct stat* st) {
  if (!S_ISREG(st->st_mode)) return {};
  const mode_t mode = st->st_mode & 07777;
  mode_t killed = mode & ~S_ISUID;
  if (killed & S_IXGRP) killed &= ~S_ISGID;
  if (killed == mode) return {};
  DETOURFS_TRY(open_fd ? sys::Fchmod(f, killed) : sys::ChmodPath(f, killed));
  Result<struct stat> now = sys::Fstat(f);
  if (!now.ok()) return Errno{now.error()};
  *st = *now;
  return {};
}

}  // namespace

Result<struct stat> Overlay::SetAttr(uint64_t ino, const SetAttrRequest& req, FileHandle* fh) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  if (NeedsCopyUp(*node)) {
    if (table_->Locations(*node).empty()) {
      // Deleted through the mount (a whiteout hides it) yet still on the
      // volume: nothing to change there. The kernel flushes ctime after
      // unlink; report the attributes as they are.
      return GetAttr(ino, fh);
    }
    DETOURFS_TRY(PrepareChange(*node));
  }
  // An open file's fd is a real one; otherwise an O_PATH fd, reached through
  // /proc for the calls that need a path.
  const bool open_fd = fh != nullptr;
  BackingHold hold = HoldBacking(fh);
  Result<SharedFd> fd = FdOf(*node, fh);
  if (!fd.ok()) {
    // A removed file only the kernel still knows (past the orphan budget):
    // the change is to attributes nobody else can see; keep it there (as
    // the filesystem reported them: Report is applied once, on the way out).
    std::optional<struct stat> last = fd.error() == ESTALE ? table_->LastAttr(*node) : std::nullopt;
    if (!last) return Errno{fd.error()};
    struct stat changed = Applied(req, *last);
    table_->SetLastAttr(*node, changed);
    Report(*node, changed);
    return changed;
  }
  const int f = (*fd)->get();
  if (req.mode) {
    if ((*node)->is_symlink()) return Errno{EOPNOTSUPP};
    DETOURFS_TRY(open_fd ? sys::Fchmod(f, *req.mode) : sys::ChmodPath(f, *req.mode));
  }
  if (req.uid || req.gid) {
    DETOURFS_TRY(sys::ChownFd(f, req.uid.value_or(static_cast<uid_t>(-1)),
                              req.gid.value_or(static_cast<gid_t>(-1))));
  }
  if (req.size) {
    if ((*node)->is_dir()) return Errno{EISDIR};
    DETOURFS_TRY(open_fd ? sys::Ftruncate(f, *req.size) : sys::TruncatePath(f, *req.size));
  }
  if (req.atime || req.mtime) {
    struct timespec times[2];
    times[0] = req.atime.value_or(timespec{0, UTIME_OMIT});
    times[1] = req.mtime.value_or(timespec{0, UTIME_OMIT});
    if (open_fd) {
      DETOURFS_TRY(sys::Futimens(f, times));
    } else if ((*node)->is_symlink()) {
      // /proc would reach the symlink's target: set the link's own times by
      // name in its parent.
      std::vector<Location> locs = table_->Locations(*node);
      if (locs.empty()) return Errno{ESTALE};
      // The parent's directory on the layer the file is on.
      Result<SharedFd> pfd = FdOf(locs.front().parent.get(), (*node)->layer());
      if (!pfd.ok()) return Errno{pfd.error()};
      DETOURFS_TRY(sys::UtimensAt((*pfd)->get(), locs.front().name.c_str(), times));
    } else {
      DETOURFS_TRY(sys::UtimensPath(f, times));
    }
  }
  Result<struct stat> st = sys::Fstat(f);
  if (st.ok() && req.kill_suidgid) DETOURFS_TRY(ClearSuidgid(f, open_fd, &*st));
  if (st.ok()) {
    Report(*node, *st);
    if (!router_.empty()) MergedDirLinks(*node, *st);
    SpilledLinks(*node, *st);
  }
  return st;
}

Result<void> Overlay::KillSuidgid(uint64_t ino, FileHandle* fh) {
  SetAttrRequest req;
  req.kill_suidgid = true;
  Result<struct stat> st = SetAttr(ino, req, fh);
  if (!st.ok()) return Errno{st.error()};
  return {};
}

Result<std::string> Overlay::Readlink(uint64_t ino) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  if (!(*node)->is_symlink()) return Errno{EINVAL};
  Result<SharedFd> fd = FdOf(*node);
  if (!fd.ok()) return Errno{fd.error()};
  return sys::ReadlinkFd((*fd)->get());
}

Result<void> Overlay::Access(uint64_t ino, int mask, const Caller& caller) {
  Result<struct stat> st = GetAttr(ino, nullptr);
  if (!st.ok()) return Errno{st.error()};
  if (mask == F_OK) return {};
  mode_t granted;
  if (caller.uid == 0) {
    // root may read and write anything, and execute what anyone may execute.
    granted = R_OK | W_OK | ((st->st_mode & 0111) || S_ISDIR(st->st_mode) ? X_OK : 0);
  } else if (caller.uid == st->st_uid) {
    granted = (st->st_mode >> 6) & 7;
  } else if (caller.gid == st->st_gid) {
    granted = (st->st_mode >> 3) & 7;
  } else {
    granted = st->st_mode & 7;
  }
  // Supplementary groups and ACLs are the kernel's to check: the mount always
  // runs with default_permissions, so this only answers for the primary ids.
  if ((mask & static_cast<int>(granted)) != mask) return Errno{EACCES};
  return {};
}

Result<struct statvfs> Overlay::StatFs(uint64_t ino) {
  // A routed path reports its tier: capacity and what is left of it. The
  // rest reports the volume.
  if (Result<Node*> node = NodeOf(ino); node.ok() && !router_.empty()) {
    if (TierSpace* space = SpaceOf(TierOf((*node)->route()))) return space->StatFs();
  }
  return sys::Fstatvfs(resolver_->root_fd()->get());
}

}  // namespace detourfs
