// TreeWalk (tree_walk.h): iterative, with a window of open directory fds.
#include "store/tree_walk.h"

#include <dirent.h>
#include <fcntl.h>

#include <string_view>
#include <unordered_set>

#include "sys/sys.h"

namespace detourfs {
namespace {

// Directory fds kept open per tree beyond the current one: the deepest
// levels. Above them, parents are reopened through "..".
constexpr size_t kOpenWindow = 8;

struct Frame {
  std::array<UniqueFd, kWalkTrees> fds;
  std::array<bool, kWalkTrees> there{};  // the tree has this dir
  std::array<dev_t, kWalkTrees> dev{};
  std::array<ino_t, kWalkTrees> ino{};
  std::string path;
  WalkItem item;  // how this directory was listed in its parent
  std::vector<WalkItem> items;
  size_t next = 0;
};

WalkDir View(const Frame& f, size_t depth) {
  WalkDir d;
  for (size_t t = 0; t < kWalkTrees; ++t) d.fds[t] = f.there[t] ? f.fds[t].get() : -1;
  d.path = &f.path;
  d.depth = depth;
  d.self = depth == 0 ? nullptr : &f.item;
  return d;
}

Result<void> Identify(Frame* f, size_t t, UniqueFd fd) {
  Result<struct stat> st = sys::Fstat(fd.get());
  if (!st.ok()) return Errno{st.error()};
  f->fds[t] = std::move(fd);
  f->there[t] = true;
  f->dev[t] = st->st_dev;
  f->ino[t] = st->st_ino;
  return {};
}

// Reopens the frame `parent`'s closed fds from its child's through "..".
Result<void> Reopen(Frame* parent, Frame* child) {
  for (size_t t = 0; t < kWalkTrees; ++t) {
    if (!parent->there[t] || parent->fds[t].valid()) continue;
    if (!child->there[t] || !child->fds[t].valid()) return Errno{ESTALE};
    Result<UniqueFd> up = sys::OpenParent(child->fds[t].get());
    if (!up.ok()) return Errno{ESTALE};
    Result<struct stat> st = sys::Fstat(up->get());
    if (!st.ok() || st->st_dev != parent->dev[t] || st->st_ino != parent->ino[t]) {
      return Errno{ESTALE};  // moved underneath the walk
    }
    parent->fds[t] = std::move(*up);
  }
  return {};
}

}  // namespace

Result<std::vector<WalkItem>> ListDir(int dirfd) {
  Result<UniqueFd> dir = sys::Reopen(dirfd, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return Errno{dir.error()};
  std::vector<WalkItem> items;
  std::vector<char> buf(size_t{32} * 1024);
  for (;;) {
    Result<size_t> n = sys::Getdents(dir->get(), buf.data(), buf.size());
    if (!n.ok()) return Errno{n.error()};
    if (*n == 0) return items;
    for (size_t pos = 0; pos < *n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf.data() + pos);
      pos += d->d_reclen;
      const std::string_view name(d->d_name);
      if (name == "." || name == "..") continue;
      mode_t type = static_cast<mode_t>(d->d_type) << 12;
      if (d->d_type == DT_UNKNOWN) {
        Result<struct stat> st = sys::StatAt(dirfd, d->d_name);
        if (!st.ok()) {
          if (st.error() == ENOENT) continue;
          return Errno{st.error()};
        }
        type = st->st_mode & S_IFMT;
      }
      items.push_back(WalkItem{std::string(name), type, 0});
    }
  }
}

Result<void> WalkTrees(std::array<int, kWalkTrees> roots, const WalkCallbacks& cb) {
  auto list = cb.list ? cb.list : [](const WalkDir& d) { return ListDir(d.fds[0]); };
  std::vector<Frame> stack;
  stack.emplace_back();
  for (size_t t = 0; t < kWalkTrees; ++t) {
    if (roots[t] < 0) continue;
    Result<UniqueFd> fd = sys::Dup(roots[t]);
    if (!fd.ok()) return Errno{fd.error()};
    DETOURFS_TRY(Identify(&stack.back(), t, std::move(*fd)));
  }
  {
    Result<std::vector<WalkItem>> items = list(View(stack.back(), 0));
    if (!items.ok()) return Errno{items.error()};
    stack.back().items = std::move(*items);
  }
  while (!stack.empty()) {
    Frame& f = stack.back();
    const size_t depth = stack.size() - 1;
    if (f.next == f.items.size()) {
      // Done with this directory: back to its parent.
      if (stack.size() == 1) return {};
      Frame& parent = stack[stack.size() - 2];
      DETOURFS_TRY(Reopen(&parent, &f));
      const WalkItem item = std::move(f.item);
      stack.pop_back();
      if (cb.leave) DETOURFS_TRY(cb.leave(View(stack.back(), depth - 1), item));
      continue;
    }
    const WalkItem& item = f.items[f.next++];
    const WalkDir here = View(f, depth);
    Result<bool> descend = cb.visit ? cb.visit(here, item) : Result<bool>(true);
    if (!descend.ok()) return Errno{descend.error()};
    if (!*descend || !S_ISDIR(item.type)) continue;
    Frame child;
    child.item = item;
    child.path = f.path.empty() ? item.name : f.path + "/" + item.name;
    for (size_t t = 0; t < kWalkTrees; ++t) {
      if (!f.there[t] || ((item.apart >> t) & 1U) != 0) continue;
      Result<UniqueFd> fd =
          sys::OpenBeneath(f.fds[t].get(), item.name.c_str(), O_PATH | O_DIRECTORY);
      if (!fd.ok()) {
        if (fd.error() == ENOENT || fd.error() == ENOTDIR || fd.error() == ELOOP) continue;
        return Errno{fd.error()};
      }
      DETOURFS_TRY(Identify(&child, t, std::move(*fd)));
    }
    Result<std::vector<WalkItem>> items = list(View(child, depth + 1));
    if (!items.ok()) return Errno{items.error()};
    child.items = std::move(*items);
    stack.push_back(std::move(child));
    // Keep fds only for the deepest levels (and the top, which the caller
    // owns a copy of): the rest are reopened through ".." on the way back.
    // A tree the level below lacks keeps its fd here: nothing below could
    // reopen it (one fd per tree at the most, where that tree ends).
    if (stack.size() > kOpenWindow + 1) {
      Frame& closing = stack[stack.size() - 1 - kOpenWindow];
      const Frame& below = stack[stack.size() - kOpenWindow];
      for (size_t t = 0; t < kWalkTrees; ++t) {
        if (below.there[t]) closing.fds[t].Reset();
      }
    }
  }
  return {};
}

Result<void> RemoveTree(int dirfd, const char* name, const RemovingFn& removing) {
  Result<struct stat> st = sys::StatAt(dirfd, name);
  if (!st.ok()) return Errno{st.error()};
  if (!S_ISDIR(st->st_mode)) {
    if (removing && removing(dirfd, name, *st)) return {};
    return sys::UnlinkAt(dirfd, name, 0);
  }
  Result<UniqueFd> top = sys::OpenBeneath(dirfd, name, O_PATH | O_DIRECTORY);
  if (!top.ok()) return Errno{top.error()};
  // Directories (paths below the top, "" for it) that still hold an entry
  // `removing` kept in place: they are not offered to it (they are not
  // empty), and their rmdir fails. Looked at only when it answers true.
  std::unordered_set<std::string> holding;
  auto kept = [&](int pfd, const std::string& n, const std::string& dir_path) {
    if (sys::StatAt(pfd, n.c_str()).ok()) holding.insert(dir_path);
  };
  WalkCallbacks cb;
  cb.visit = [&](const WalkDir& parent, const WalkItem& item) -> Result<bool> {
    if (S_ISDIR(item.type)) return true;
    const int pfd = parent.fds[0];
    if (removing) {
      Result<struct stat> est = sys::StatAt(pfd, item.name.c_str());
      if (est.ok() && removing(pfd, item.name.c_str(), *est)) {
        kept(pfd, item.name, *parent.path);
        return false;
      }
    }
    Result<void> r = sys::UnlinkAt(pfd, item.name.c_str(), 0);
    if (!r.ok() && r.error() != ENOENT) return Errno{r.error()};
    return false;
  };
  cb.leave = [&](const WalkDir& parent, const WalkItem& item) -> Result<void> {
    const int pfd = parent.fds[0];
    const std::string path = parent.path->empty() ? item.name : *parent.path + "/" + item.name;
    if (removing && holding.count(path) == 0) {
      Result<struct stat> est = sys::StatAt(pfd, item.name.c_str());
      if (est.ok() && removing(pfd, item.name.c_str(), *est)) {
        kept(pfd, item.name, *parent.path);
        return {};
      }
    }
    // (ENOTEMPTY: it holds what `removing` kept; the rest still goes.)
    Result<void> r = sys::UnlinkAt(pfd, item.name.c_str(), AT_REMOVEDIR);
    if (!r.ok() && r.error() == ENOTEMPTY) holding.insert(*parent.path);
    if (!r.ok() && r.error() != ENOENT && r.error() != ENOTEMPTY) return r;
    return {};
  };
  DETOURFS_TRY(WalkTrees({top->get(), -1, -1, -1}, cb));
  top->Reset();
  if (removing && holding.count("") == 0 && removing(dirfd, name, *st)) return {};
  return sys::UnlinkAt(dirfd, name, AT_REMOVEDIR);
}

Result<uint64_t> DiskUsage(int dirfd) {
  uint64_t bytes = 0;
  std::unordered_set<uint64_t> seen;  // inodes with several links, counted once
  WalkCallbacks cb;
  cb.visit = [&](const WalkDir& parent, const WalkItem& item) -> Result<bool> {
    Result<struct stat> st = sys::StatAt(parent.fds[0], item.name.c_str());
    if (!st.ok()) return st.error() == ENOENT ? Result<bool>(false) : Errno{st.error()};
    if (st->st_nlink > 1 && !S_ISDIR(st->st_mode) && !seen.insert(st->st_ino).second) {
      return false;
    }
    bytes += static_cast<uint64_t>(st->st_blocks) * 512;
    return S_ISDIR(st->st_mode);
  };
  DETOURFS_TRY(WalkTrees({dirfd, -1, -1, -1}, cb));
  return bytes;
}

}  // namespace detourfs
