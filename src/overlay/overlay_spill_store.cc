// Overlay: the disk tier as the memory tier's fallback. When a memory-routed
// file outgrows a full memory tier and its route falls back to disk, its
// data moves to the disk tier's spill store (spill_store.h) and its memory
// file stays behind, emptied, as a stub (markers.h): the stub keeps every
// name, the directory it is in, its inode number and its place among
// whiteouts and opaque directories, so nothing about the namespace changes —
// only where the bytes are. The node is still the stub's (its identity,
// checked by the resolver), but every fd the resolver hands out for it is
// the data's: attributes, xattrs, reads and writes reach the data file.
//
// A stub's data goes when its last name does (unlink, rename over it, a
// tree removed), or when it moves on to the volume; what a crash leaves
// behind is collected at the next start.
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <unordered_set>

#include "detourfs/overlay.h"
#include "detourfs/status.h"
#include "inodes/resolver.h"
#include "overlay/backing_tree.h"
#include "overlay/markers.h"
#include "store/spill_store.h"
#include "store/tier_space.h"
#include "sys/sys.h"

namespace detourfs {

bool Overlay::FallsBackToDisk(int route) const {
  if (spill_store_ == nullptr || route == kNotRouted) return false;
  const RouteRule& rule = router_.rules()[static_cast<size_t>(route)];
  if (rule.tier != TierId::kMemory) return false;
  for (TierId next : rule.fallback) {
    if (next == TierId::kDisk) return true;
    if (next == TierId::kVolume) return false;
  }
  return false;
}

Layer Overlay::DataLayer(Node* node) const {
  return node->spilled() != 0 ? Layer::kDisk : node->layer();
}

Result<void> Overlay::SpillToStore(Node* node) {
  Result<SharedFd> src = resolver_->Fd(node);
  if (!src.ok()) return Errno{src.error()};
  Result<struct stat> st = sys::Fstat((*src)->get());
  if (!st.ok()) return Errno{st.error()};
  // The stub keeps every name (they are its links); a file with none left
  // moves on whole (SpillUnnamed).
  if (st->st_nlink == 0 || !S_ISREG(st->st_mode)) return Errno{ENOSPC};
  if (!SpaceOf(Layer::kDisk)->Admit(static_cast<uint64_t>(st->st_size))) return Errno{ENOSPC};

  std::lock_guard handles_lock(handles_mu_);
  HeldHandles held;
  HoldHandles(node, &held);
  LayerLock::Hold layers = layers_.Exclusive();
  const uint64_t token = SpillStore::NewToken();
  const std::string name = SpillStore::NameOf(token);
  const int stub = (*src)->get();
  // The data first, complete (CopyNodeInto links it in only when whole);
  // then the stub is marked, then emptied. A crash before the mark leaves
  // the file as it was (and a store file the next start removes); after
  // it, a stub whose data is complete in the store.
  DETOURFS_TRY(CopyNodeInto(stub, *st, spill_store_->dir(), name.c_str()));
  Result<UniqueFd> data = spill_store_->Open(token, O_PATH);
  Result<void> marked = data.ok() ? markers::MarkSpilled(stub, token) : Errno{data.error()};
  if (marked.ok()) marked = sys::ChmodPath(stub, 0);
  if (!marked.ok()) {
    (void)sys::RemoveXattr(stub, markers::kSpilledXattr);
    DropSpilledData(token);
    return marked;
  }
  table_->SetSpilled(node, token);
  if (node->ino() == 0) {
    struct stat reported = *st;
    ReportIno(reported);
    table_->KeepIno(node, static_cast<uint64_t>(reported.st_ino));  // the stub keeps it taken
  }
  resolver_->Drop(node->id());
  resolver_->Prime(node, std::move(*data));
  Result<void> repointed = RepointHandles(node, held);
  // Only now: no handle writes to the memory copy any more.
  if (Result<void> emptied = sys::TruncatePath(stub, 0); !emptied.ok()) {
    spdlog::warn("spill of node {}: its memory copy stays until removed: {}", node->id(),
                 ErrnoText(emptied.error()));
  }
  spdlog::info("memory tier full: data of node {} ({} bytes) moved to the disk tier", node->id(),
               st->st_size);
  return repointed;
}

Result<uint64_t> Overlay::CopyUpToStore(int src, const struct stat& st, int dirfd,
                                        const char* name) {
  if (!S_ISREG(st.st_mode)) return Errno{ENOSPC};  // nothing to put elsewhere
  if (!SpaceOf(Layer::kDisk)->Admit(static_cast<uint64_t>(st.st_size))) return Errno{ENOSPC};
  const uint64_t token = SpillStore::NewToken();
  const std::string data = SpillStore::NameOf(token);
  // As in SpillToStore: the data complete first, then the stub — built
  // unnamed, marked, and linked in whole. A crash in between leaves only
  // store data no stub refers to, which the next start removes.
  DETOURFS_TRY(CopyNodeInto(src, st, spill_store_->dir(), data.c_str()));
  Result<UniqueFd> stub = sys::OpenBeneath(dirfd, ".", O_TMPFILE | O_RDWR, 0);
  Result<void> made = stub.ok() ? sys::ChownFd(stub->get(), st.st_uid, st.st_gid)
                                : Result<void>(Errno{stub.error()});
  if (made.ok()) made = markers::MarkSpilled(stub->get(), token);
  if (made.ok()) made = sys::LinkFd(stub->get(), dirfd, name);
  if (!made.ok()) {
    DropSpilledData(token);
    return Errno{made.error()};
  }
  spdlog::info("memory tier full: '{}' ({} bytes) copied up with its data on the disk tier", name,
               st.st_size);
  return token;
}

Result<std::optional<Entry>> Overlay::LookupSpilled(Node* parent, std::string_view name, int dirfd,
                                                    const struct stat& st, Layer tier, int route) {
  const std::string n(name);
  Result<UniqueFd> stub = sys::OpenBeneath(dirfd, n.c_str(), O_PATH | O_NOFOLLOW);
  if (!stub.ok()) return Errno{stub.error()};
  Result<uint64_t> token = markers::SpilledToken(stub->get());
  if (!token.ok()) return Errno{token.error()};
  if (*token == 0) return std::optional<Entry>();  // an ordinary empty mode-0000 file
  Result<UniqueFd> data = spill_store_ != nullptr ? spill_store_->Open(*token, O_PATH)
                                                  : Result<UniqueFd>(Errno{ENOENT});
  if (!data.ok()) {
    spdlog::error("'{}' is a spilled file whose data {} the disk tier's spill store lacks: {}", n,
                  SpillStore::NameOf(*token), ErrnoText(data.error()));
    return Errno{EIO};
  }
  Result<struct stat> dst = sys::Fstat(data->get());
  if (!dst.ok()) return Errno{dst.error()};
  bool created = false;
  Node* node = table_->Remember(parent, name, st, tier, route, &created);
  table_->SetSpilled(node, *token);
  if (created) {
    // Its number: the volume's if it was copied up from there, else the
    // stub's own, which it had before it spilled.
    uint64_t origin = OriginIno(stub->get());
    if (origin == 0) {
      struct stat reported = st;
      ReportIno(reported);
      origin = static_cast<uint64_t>(reported.st_ino);
    }
    table_->KeepIno(node, origin);
  }
  resolver_->Prime(node, std::move(*data));
  Entry e{node, *dst};
  e.attr.st_nlink = st.st_nlink;  // the stub's names are the file's
  Report(node, e.attr);
  return std::optional<Entry>(e);
}

Result<Overlay::Victim> Overlay::StubOf(Node* node) {
  const BackingId want = table_->Backing(node);
  for (const Location& loc : table_->Locations(node)) {
    Result<SharedFd> dir = resolver_->Fd(loc.parent.get(), node->layer());
    if (!dir.ok()) continue;
    Result<UniqueFd> stub = sys::OpenBeneath((*dir)->get(), loc.name.c_str(), O_PATH | O_NOFOLLOW);
    if (!stub.ok()) continue;
    Result<struct stat> st = sys::Fstat(stub->get());
    if (st.ok() && st->st_dev == want.dev && st->st_ino == want.ino) {
      return Victim{std::move(*stub), *st};
    }
  }
  return Errno{ESTALE};
}

void Overlay::SpilledLinks(Node* node, struct stat& st) {
  if (node->spilled() == 0 || st.st_nlink == 0) return;
  if (Result<Victim> stub = StubOf(node); stub.ok()) st.st_nlink = stub->st.st_nlink;
}

Result<Entry> Overlay::LinkSpilled(Node* node, Node* new_parent, std::string_view new_name,
                                   int dirfd, Layer layer, int route) {
  Result<Victim> stub = StubOf(node);
  if (!stub.ok()) return Errno{stub.error()};
  const std::string n(new_name);
  DETOURFS_TRY(sys::LinkFd(stub->fd.get(), dirfd, n.c_str()));
  Result<struct stat> sst = sys::Fstat(stub->fd.get());  // its link count now
  if (!sst.ok()) return Errno{sst.error()};
  Entry e{table_->Remember(new_parent, new_name, *sst, layer, route), {}};
  Result<SharedFd> data = FdOf(node);
  Result<struct stat> st = data.ok() ? sys::Fstat((*data)->get()) : Errno{data.error()};
  if (!st.ok()) {
    Forget(e.node->id(), 1);
    return Errno{st.error()};
  }
  e.attr = *st;
  e.attr.st_nlink = sst->st_nlink;
  Report(e.node, e.attr);
  return e;
}

void Overlay::ReleaseSpilled(Victim* victim) {
  if (!markers::MaybeSpilled(victim->st) || victim->st.st_nlink > 1) return;
  Result<uint64_t> token = markers::SpilledToken(victim->fd.get());
  if (!token.ok() || *token == 0 || spill_store_ == nullptr) return;
  // The data stands in for the stub: an open or still-known node reads it.
  Result<UniqueFd> data = spill_store_->Open(*token, O_PATH);
  if (data.ok()) {
    if (Result<struct stat> dst = sys::Fstat(data->get()); dst.ok()) {
      // The data's attributes, with the stub's identity and link count (the
      // table finds the node by them).
      const struct stat stub = victim->st;
      victim->fd = std::move(*data);
      victim->st = *dst;
      victim->st.st_dev = stub.st_dev;
      victim->st.st_ino = stub.st_ino;
      victim->st.st_nlink = stub.st_nlink;
    }
  }
  DropSpilledData(*token);
}

void Overlay::DropSpilledData(uint64_t token) {
  if (Result<void> r = spill_store_->Remove(token); !r.ok() && r.error() != ENOENT) {
    spdlog::warn("spilled data {} stays in the spill store until the next start: {}",
                 SpillStore::NameOf(token), ErrnoText(r.error()));
  }
}

RemovedFn Overlay::SpilledDataDropper() {
  return [this](int dirfd, const char* name, const struct stat& st) {
    if (spill_store_ == nullptr || !markers::MaybeSpilled(st) || st.st_nlink > 1) return;
    Result<UniqueFd> stub = sys::OpenBeneath(dirfd, name, O_PATH | O_NOFOLLOW);
    Result<uint64_t> token =
        stub.ok() ? markers::SpilledToken(stub->get()) : Result<uint64_t>(Errno{stub.error()});
    if (token.ok() && *token != 0) DropSpilledData(*token);
  };
}

namespace {

// Adds the spill tokens of the stubs beneath the tier directory `dirfd`.
Result<void> CollectTokens(int dirfd, std::unordered_set<uint64_t>* tokens) {
  std::vector<std::string> dirs;
  DETOURFS_TRY(ForEachEntry(dirfd, [&](std::string_view n, ino_t, mode_t type) -> Result<void> {
    const std::string name(n);
    if (S_ISDIR(type)) {
      dirs.push_back(name);
      return {};
    }
    if (type != 0 && !S_ISREG(type)) return {};
    Result<struct stat> st = sys::StatAt(dirfd, name.c_str());
    if (!st.ok()) return st.error() == ENOENT ? Result<void>() : Errno{st.error()};
    if (S_ISDIR(st->st_mode)) dirs.push_back(name);
    if (!markers::MaybeSpilled(*st)) return {};
    Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name.c_str(), O_PATH | O_NOFOLLOW);
    if (!fd.ok()) return Errno{fd.error()};
    Result<uint64_t> token = markers::SpilledToken(fd->get());
    if (!token.ok()) return Errno{token.error()};
    if (*token != 0) tokens->insert(*token);
    return {};
  }));
  for (const std::string& d : dirs) {
    Result<UniqueFd> sub = sys::OpenBeneath(dirfd, d.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!sub.ok()) return Errno{sub.error()};
    DETOURFS_TRY(CollectTokens(sub->get(), tokens));
  }
  return {};
}

}  // namespace

Result<size_t> Overlay::CollectSpillGarbage() {
  if (spill_store_ == nullptr) return size_t{0};
  Result<std::vector<uint64_t>> stored = spill_store_->Tokens();
  if (!stored.ok()) return Errno{stored.error()};
  if (stored->empty()) return size_t{0};  // the usual case: no walk
  std::unordered_set<uint64_t> referenced;
  if (resolver_->HasLayer(Layer::kMemory)) {
    DETOURFS_TRY(CollectTokens(resolver_->layer_root(Layer::kMemory)->get(), &referenced));
  }
  size_t removed = 0;
  for (uint64_t token : *stored) {
    if (referenced.count(token) != 0) continue;
    DETOURFS_TRY(spill_store_->Remove(token));
    ++removed;
  }
  return removed;
}

}  // namespace detourfs
