// OverlayImpl: construction, start-up (recovery of what a crash left, the
// tiers checked against the rules), shutdown.
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <unordered_set>

#include "overlay/overlay_impl.h"
#include "overlay/unrouted_content.h"
#include "store/markers.h"
#include "store/tree_walk.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

TierId TierIdOf(Layer l) { return l == Layer::kMemory ? TierId::kMemory : TierId::kDisk; }

}  // namespace

Result<std::unique_ptr<Overlay>> OpenOverlay(OverlaySetup setup) {
  const LayerDirs& vol = setup.layers[Index(Layer::kVolume)];
  if (!vol.tree) return Errno{EINVAL};
  Result<struct stat> vst = sys::Fstat(vol.tree->get());
  if (!vst.ok()) return Errno{vst.error()};
  Binding root;
  root.layer = Layer::kVolume;
  root.parts[Index(Layer::kVolume)] = Part::Of(*vst);
  std::vector<int> id_dirs;
  if (vol.root) id_dirs.push_back(vol.root->get());
  for (Layer t : kTiers) {
    const LayerDirs& d = setup.layers[Index(t)];
    if (!d.tree) {
      root.parts[Index(t)] = Part::Absent();
      continue;
    }
    Result<struct stat> st = sys::Fstat(d.tree->get());
    if (!st.ok()) return Errno{st.error()};
    root.parts[Index(t)] = Part::Of(*st);
    id_dirs.push_back(d.root->get());
  }
  for (const RouteRule& rule : setup.router.rules()) {
    const Layer need = rule.tier == TierId::kMemory ? Layer::kMemory
                       : rule.tier == TierId::kDisk ? Layer::kDisk
                                                    : Layer::kVolume;
    if (!setup.layers[Index(need)].tree) return Errno{EINVAL};  // a rule names a tier not given
  }
  std::unique_ptr<IdSource> ids;
  if (id_dirs.empty()) {
    ids = IdSource::Transient();
  } else if (Status s = IdSource::Open(id_dirs, &ids); !s.ok()) {
    spdlog::error("{}", s.ToString());
    return Errno{s.err() != 0 ? s.err() : EIO};
  }
  auto overlay = std::make_unique<OverlayImpl>(std::move(setup), static_cast<uint64_t>(vst->st_ino),
                                               root, std::move(ids));
  if (Status s = overlay->Start(); !s.ok()) {
    spdlog::error("{}", s.ToString());
    return Errno{s.err() != 0 ? s.err() : EIO};
  }
  return std::unique_ptr<Overlay>(std::move(overlay));
}

OverlayImpl::OverlayImpl(OverlaySetup setup, uint64_t root_pid, const Binding& root,
                         std::unique_ptr<IdSource> ids)
    : options_(setup.options),
      router_(std::move(setup.router)),
      changes_(std::make_unique<ChangeLayer>(setup.layers, std::move(setup.failpoints),
                                             std::move(setup.sink))),
      ids_(std::move(ids)),
      table_(root_pid, root),
      cache_(setup.options.fd_cache_capacity),
      resolver_(table_, cache_, *changes_),
      gate_(table_),
      volume_dev_(setup.layers[Index(Layer::kVolume)].dev),
      tier_specs_(setup.tiers) {
  // Removed files the kernel still holds get as many fds as the cache.
  table_.SetOrphanBudget(options_.fd_cache_capacity);
  // A volume inode in the trash whose number a known file reports (copied
  // up, its volume names hidden) is held, not freed.
  changes_->SetNumbersInUse([this](uint64_t n) { return table_.HasPid(n); });
  for (const TierSpec& t : tier_specs_) {
    const LayerDirs& d = changes_->dirs(t.layer);
    if (!d.tree) continue;
    auto space = std::make_unique<TierSpace>(d.tree, t.capacity, t.high_watermark);
    if (space->MayShareFilesystem()) {
      // A capacity on a filesystem holding more than the tier (a node's
      // disk): the tier's usage is what its own directories take.
      uint64_t own = 0;
      bool measured = true;
      for (const SharedFd* dir : {&d.tree, &d.spill, &d.index, &d.trash}) {
        if (!*dir) continue;
        Result<uint64_t> u = DiskUsage((*dir)->get());
        if (u.ok()) {
          own += *u;
        } else {
          measured = false;
        }
      }
      if (!measured || !space->SetOwnUsage(own).ok()) {
        spdlog::warn("{}: cannot measure what it holds; its filesystem's usage counts",
                     LayerName(t.layer));
      }
    }
    spaces_[Index(t.layer)] = std::move(space);
  }
}

OverlayImpl::~OverlayImpl() {
  Shutdown();
  MutexLock lock(&handles_mu_);
  for (FileHandle* fh : files_) delete fh;  // NOLINT: owned by a session now gone
  for (DirHandle* dh : dirs_) delete dh;    // NOLINT
}

void OverlayImpl::StartBackground() { changes_->Start(); }

void OverlayImpl::Shutdown() { changes_->Stop(); }

Status OverlayImpl::Start() {
  if (Status s = changes_->Recover(); !s.ok()) return s;
  const LayerDirs& vol = changes_->dirs(Layer::kVolume);
  Result<struct stat> vst = sys::Fstat(vol.tree->get());
  for (Layer t : kTiers) {
    const LayerDirs& d = changes_->dirs(t);
    if (!d.tree) continue;
    // The index: ids of hard-linked volume files copied up.
    Result<std::vector<WalkItem>> items = ListDir(d.index->get());
    if (!items.ok()) return Status::FromErrno(items.error(), "cannot list a tier's index");
    {
      MutexLock lock(&index_mu_);
      for (const WalkItem& item : *items) {
        indexed_[Index(t)].insert(std::strtoull(item.name.c_str(), nullptr, 16));
      }
    }
    // The tier's root stands for the volume's: same owner, mode and ACLs,
    // since entries are made there with the caller's credentials.
    if (vst.ok()) {
      (void)sys::ChownFd(d.tree->get(), vst->st_uid, vst->st_gid);
      (void)sys::ChmodPath(d.tree->get(), vst->st_mode & 07777);
      for (const char* acl : {"system.posix_acl_access", "system.posix_acl_default"}) {
        Result<std::string> v = markers::GetBytes(vol.tree->get(), acl);
        if (v.ok() && !v->empty()) {
          (void)sys::SetXattr(d.tree->get(), acl, v->data(), v->size(), 0);
        } else if (v.ok()) {
          (void)sys::RemoveXattr(d.tree->get(), acl);
        }
      }
    }
    ReportUnroutedContent(t);
  }
  SetAsideOrphanedSpills();
  return Status::OK();
}

void OverlayImpl::ReportUnroutedContent(Layer layer) {
  const TierId tier = TierIdOf(layer);
  const std::string_view name = TierName(tier);
  Result<std::vector<UnroutedEntry>> found =
      FindUnroutedContent(changes_->dirs(layer).tree->get(), tier, router_);
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

void OverlayImpl::SetAsideOrphanedSpills() {
  // The tokens each store holds (names of 16 hex digits).
  std::array<std::vector<std::string>, kLayerCount> stored;
  size_t total = 0;
  for (Layer l : kAllLayers) {
    const LayerDirs& d = changes_->dirs(l);
    if (!d.spill) continue;
    Result<std::vector<WalkItem>> items = ListDir(d.spill->get());
    if (!items.ok()) continue;
    for (const WalkItem& item : *items) {
      if (S_ISREG(item.type) && item.name.size() == 16) stored[Index(l)].push_back(item.name);
    }
    total += stored[Index(l)].size();
  }
  if (total == 0) return;
  // The tokens stubs refer to, wherever a stub can be: the tiers' trees,
  // indexes, trash (the trash thread drops a stub's data with it) and kept/
  // (set aside: its data stays for whoever moves it back).
  std::array<std::unordered_set<uint64_t>, kLayerCount> referenced;
  for (Layer t : kTiers) {
    const LayerDirs& d = changes_->dirs(t);
    if (!d.tree) continue;
    for (const SharedFd* root : {&d.tree, &d.index, &d.trash, &d.kept}) {
      if (!*root) continue;
      WalkCallbacks cb;
      cb.visit = [&](const WalkDir& parent, const WalkItem& item) -> Result<bool> {
        if (S_ISDIR(item.type)) return true;
        if (!S_ISREG(item.type)) return false;
        Result<markers::IdRecord> rec = markers::GetIdRecordAt(parent.fds[0], item.name.c_str());
        if (rec.ok() && rec->spill.token != 0) {
          referenced[Index(rec->spill.layer)].insert(rec->spill.token);
        }
        return false;
      };
      if (Result<void> r = WalkTrees({(*root)->get(), -1, -1, -1}, cb); !r.ok()) {
        spdlog::warn(
            "{}: cannot check its stubs against the spill stores: {}; nothing is set "
            "aside",
            LayerName(t), ErrnoText(r.error()));
        return;
      }
    }
  }
  for (Layer l : kAllLayers) {
    const LayerDirs& d = changes_->dirs(l);
    size_t set_aside = 0;
    for (const std::string& name : stored[Index(l)]) {
      if (referenced[Index(l)].count(std::strtoull(name.c_str(), nullptr, 16)) != 0) continue;
      (void)sys::MkdirAt(d.spill->get(), "orphaned", 0700);
      Result<UniqueFd> orphaned =
          sys::OpenBeneath(d.spill->get(), "orphaned", O_PATH | O_DIRECTORY);
      if (!orphaned.ok()) break;
      if (sys::RenameAt(d.spill->get(), name.c_str(), orphaned->get(), name.c_str(), 0).ok()) {
        ++set_aside;
      }
    }
    if (set_aside > 0) {
      spdlog::error(
          "{}: {} spilled data files no stub refers to were set aside in its spill/orphaned "
          "(kept, not deleted: a crash in the middle of a spill leaves one; a tier wiped or "
          "removed from the config leaves all of its own)",
          LayerName(l), set_aside);
    }
  }
}

}  // namespace detourfs
