// OverlayImpl: tier capacity — a file whose tier is full moves its data on
// along its route's fallback chain (memory, then the disk tier's spill
// store, then the volume's), keeping its inode on the tier as a stub.
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include "overlay/overlay_impl.h"
#include "store/markers.h"
#include "sys/sys.h"

namespace detourfs {

Layer OverlayImpl::DataLayer(const Binding& b) {
  return b.spill.token != 0 ? b.spill.layer : b.layer;
}

std::optional<Layer> OverlayImpl::NextStore(Node* node, Layer from) {
  const int route = RouteOf(node);
  std::vector<Layer> chain;
  if (route >= 0) {
    const RouteRule& rule = router_.rules()[static_cast<size_t>(route)];
    chain.push_back(TierOf(route));
    for (TierId t : rule.fallback) {
      chain.push_back(t == TierId::kMemory ? Layer::kMemory
                      : t == TierId::kDisk ? Layer::kDisk
                                           : Layer::kVolume);
    }
  } else if (IsTier(from)) {
    // No path any more (unlinked, still open): the default chain onward.
    chain = {Layer::kMemory, Layer::kDisk, Layer::kVolume};
  } else {
    return std::nullopt;
  }
  bool after = false;
  for (Layer l : chain) {
    if (after && changes_->dirs(l).spill && l != chain.front()) return l;
    if (l == from) after = true;
  }
  return std::nullopt;
}

Result<void> OverlayImpl::Spill(Node* node, Layer full) {
  WriteLock lock(&node->content_mu);
  Binding& b = node->mutable_binding();
  if (node->is_dir() || DataLayer(b) != full) return {};  // moved on meanwhile
  for (std::optional<Layer> next = NextStore(node, full); next; next = NextStore(node, *next)) {
    Result<UniqueFd> data = resolver_.OpenData(node, b, O_RDONLY);
    if (!data.ok()) return Errno{data.error()};
    Result<struct stat> dst = sys::Fstat(data->get());
    if (!dst.ok()) return Errno{dst.error()};
    if (TierSpace* space = SpaceOf(*next);
        space && !space->Admit(static_cast<uint64_t>(dst->st_size))) {
      continue;  // that one is full too
    }
    Result<uint64_t> token = changes_->SpillIn(*next, data->get());
    if (!token.ok()) {
      if (IsFull(token.error())) continue;
      return Errno{token.error()};
    }
    DETOURFS_TRY(changes_->Hit("spill.copied"));
    // The stub now points at the store: the commit.
    Result<SharedFd> stub = resolver_.Fd(node, b);
    if (!stub.ok()) return Errno{stub.error()};
    const markers::SpillRef old = b.spill;
    markers::IdRecord rec{node->pid(), false, markers::SpillRef{*next, *token}};
    DETOURFS_TRY(changes_->SetIdRecord((*stub)->get(), rec));
    DETOURFS_TRY(changes_->Hit("spill.marked"));
    b.spill = rec.spill;
    node->generation.fetch_add(1, std::memory_order_acq_rel);
    // Handles follow before the old copy goes: no write lands in it, no read
    // sees it emptied (content_mu is held: no request is using it now).
    RepointHandles(node, b);
    if (old.token != 0) {
      changes_->DropSpilled(old);
    } else {
      (void)sys::TruncatePath((*stub)->get(), 0);
    }
    const std::string path = PathOf(node);
    changes_->Record(ChangeKind::kSpill, At{*next, -1, "", path, true}, node->pid());
    spdlog::info("{} full: data of '{}' ({} bytes) moved to the {}'s spill store", LayerName(full),
                 path, dst->st_size, LayerName(*next));
    return {};
  }
  return Errno{ENOSPC};
}

}  // namespace detourfs
