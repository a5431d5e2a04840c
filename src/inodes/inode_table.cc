// InodeTable: node ids, lookup counts, aliases and the backing-identity index.
#include "detourfs/inode_table.h"

#include <algorithm>
#include <cassert>

namespace detourfs {

NodePin& NodePin::operator=(NodePin&& o) noexcept {
  if (this != &o) {
    if (node_) table_->Unpin(node_);
    table_ = o.table_;
    node_ = o.node_;
    o.node_ = nullptr;
  }
  return *this;
}

NodePin::~NodePin() {
  if (node_) table_->Unpin(node_);
}

InodeTable::InodeTable(const struct stat& root_st) {
  auto root =
      std::unique_ptr<Node>(new Node(kRootId, S_IFDIR, BackingId{root_st.st_dev, root_st.st_ino}));
  root->nlookup_ = 1;  // never forgotten
  root_ = root.get();
  nodes_.emplace(kRootId, std::move(root));
}

Node* InodeTable::Find(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : it->second.get();
}

std::optional<Layer> InodeTable::LayerOf(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return std::nullopt;
  return it->second->layer();
}

Node* InodeTable::NodeByBacking(const struct stat& st) {
  auto it = by_backing_.find(BackingId{st.st_dev, st.st_ino});
  if (it == by_backing_.end()) return nullptr;
  Node* node = it->second;
  if (node->type_ == (st.st_mode & S_IFMT)) return node;
  // The inode number was reused by a file of another type behind our back:
  // the old node keeps serving its open files but is no longer found by it.
  Unindex(node);
  return nullptr;
}

Node* InodeTable::Remember(Node* parent, std::string_view name, const struct stat& st, Layer layer,
                           int route, bool* created) {
  std::lock_guard lock(mu_);
  Node* node = NodeByBacking(st);
  if (created) *created = node == nullptr;
  if (!node) {
    auto owned = std::unique_ptr<Node>(
        new Node(next_id_++, st.st_mode & S_IFMT, BackingId{st.st_dev, st.st_ino}));
    node = owned.get();
    node->layer_.store(layer, std::memory_order_release);
    node->route_.store(route, std::memory_order_release);
    nodes_.emplace(node->id_, std::move(owned));
    by_backing_[node->backing_] = node;
    node->indexed_ = true;
  }
  if (node->is_dir() && !node->aliases_.empty()) {
    // A directory has one name; finding it under another means it was
    // renamed underneath the mount. Follow it.
    Node::Alias& a = node->aliases_.front();
    if (a.parent != parent || a.name != name) {
      Node* old_parent = a.parent;
      node->aliases_.clear();
      AddAlias(node, parent, name);
      old_parent->pins_--;
      MaybeErase(old_parent);
    }
  } else {
    AddAlias(node, parent, name);
  }
  node->nlookup_++;
  return node;
}

void InodeTable::AddAlias(Node* node, Node* parent, std::string_view name) {
  auto& aliases = node->aliases_;
  auto it = std::find_if(aliases.begin(), aliases.end(), [&](const Node::Alias& a) {
    return a.parent == parent && a.name == name;
  });
  if (it != aliases.end()) {
    // Most recent first: the name the kernel used last is the likeliest valid.
    std::rotate(aliases.begin(), it, it + 1);
    return;
  }
  aliases.insert(aliases.begin(), Node::Alias{parent, std::string(name)});
  parent->pins_++;
}

bool InodeTable::RemoveAlias(Node* node, Node* parent, std::string_view name) {
  auto& aliases = node->aliases_;
  auto it = std::find_if(aliases.begin(), aliases.end(), [&](const Node::Alias& a) {
    return a.parent == parent && a.name == name;
  });
  if (it == aliases.end()) return false;
  aliases.erase(it);
  parent->pins_--;
  MaybeErase(parent);
  return true;
}

void InodeTable::Rebind(Node* node, const struct stat& st, Layer layer) {
  std::lock_guard lock(mu_);
  Unindex(node);
  node->backing_ = BackingId{st.st_dev, st.st_ino};
  node->layer_.store(layer, std::memory_order_release);
  node->spilled_.store(0, std::memory_order_release);
  if (by_backing_.emplace(node->backing_, node).second) node->indexed_ = true;
}

std::string InodeTable::PathOf(Node* node, bool* ok) {
  std::lock_guard lock(mu_);
  std::vector<const std::string*> names;
  for (Node* n = node; n != root_;) {
    if (n->aliases_.empty()) {
      if (ok) *ok = false;
      return {};
    }
    const Node::Alias& a = n->aliases_.front();  // the most recent name
    names.push_back(&a.name);
    n = a.parent;
  }
  std::string path;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!path.empty()) path += '/';
    path += **it;
  }
  if (ok) *ok = true;
  return path;
}

void InodeTable::Unindex(Node* node) {
  if (!node->indexed_) return;
  auto it = by_backing_.find(node->backing_);
  if (it != by_backing_.end() && it->second == node) by_backing_.erase(it);
  node->indexed_ = false;
}

void InodeTable::MaybeErase(Node* node) {
  while (node && node != root_ && node->nlookup_ == 0 && node->pins_ == 0 &&
         node->open_fds_.empty()) {
    Unindex(node);
    std::vector<Node::Alias> aliases = std::move(node->aliases_);
    if (node->orphan_fd_) --orphan_fds_;
    nodes_.erase(node->id_);
    node = nullptr;
    // Releasing the parents' pins may free them in turn; walk iteratively so
    // a deep chain cannot overflow the stack.
    for (size_t i = 0; i < aliases.size(); ++i) {
      Node* parent = aliases[i].parent;
      parent->pins_--;
      if (i + 1 == aliases.size()) {
        node = parent;
      } else {
        MaybeErase(parent);
      }
    }
  }
}

void InodeTable::Forget(uint64_t id, uint64_t n) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  Node* node = it->second.get();
  node->nlookup_ -= std::min(n, node->nlookup_);
  MaybeErase(node);
}

std::vector<Location> InodeTable::Locations(Node* node) {
  std::lock_guard lock(mu_);
  std::vector<Location> out;
  out.reserve(node->aliases_.size());
  for (const Node::Alias& a : node->aliases_) {
    a.parent->pins_++;
    out.push_back(Location{NodePin(this, a.parent), a.name});
  }
  return out;
}

uint64_t InodeTable::Unlinked(Node* parent, std::string_view name, const struct stat& st) {
  std::lock_guard lock(mu_);
  auto it = by_backing_.find(BackingId{st.st_dev, st.st_ino});
  if (it == by_backing_.end()) return 0;
  Node* node = it->second;
  // A directory's link count includes "." and its subdirectories' "..".
  bool last_link = S_ISDIR(st.st_mode) || st.st_nlink <= 1;
  if (last_link) Unindex(node);
  const uint64_t id = node->id_;
  node->pins_++;  // keep it while its alias goes
  RemoveAlias(node, parent, name);
  // Without a name we know (its other links never looked up), the node is
  // reachable only through the caller's fd, as after its last link.
  const bool nameless = node->aliases_.empty();
  node->pins_--;
  MaybeErase(node);
  return last_link || nameless ? id : 0;
}

void InodeTable::Removed(const struct stat& st) {
  if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) return;
  std::lock_guard lock(mu_);
  auto it = by_backing_.find(BackingId{st.st_dev, st.st_ino});
  if (it == by_backing_.end()) return;
  Node* node = it->second;
  Unindex(node);
  node->pins_++;  // keep it while its aliases go
  while (!node->aliases_.empty()) {
    const Node::Alias a = node->aliases_.back();
    RemoveAlias(node, a.parent, a.name);
  }
  node->pins_--;
  MaybeErase(node);
}

void InodeTable::Renamed(const struct stat& st, Node* old_parent, std::string_view old_name,
                         Node* new_parent, std::string_view new_name) {
  std::lock_guard lock(mu_);
  auto it = by_backing_.find(BackingId{st.st_dev, st.st_ino});
  if (it == by_backing_.end()) return;
  MoveAlias(it->second, old_parent, old_name, new_parent, new_name);
}

void InodeTable::Renamed(Node* node, Node* old_parent, std::string_view old_name, Node* new_parent,
                         std::string_view new_name) {
  std::lock_guard lock(mu_);
  MoveAlias(node, old_parent, old_name, new_parent, new_name);
}

void InodeTable::MoveAlias(Node* node, Node* old_parent, std::string_view old_name,
                           Node* new_parent, std::string_view new_name) {
  node->pins_++;
  RemoveAlias(node, old_parent, old_name);
  AddAlias(node, new_parent, new_name);
  node->pins_--;
}

void InodeTable::AddOpenFd(Node* node, SharedFd fd) {
  std::lock_guard lock(mu_);
  node->open_fds_.push_back(std::move(fd));
}

void InodeTable::RemoveOpenFd(Node* node, const SharedFd& fd) {
  std::lock_guard lock(mu_);
  auto& fds = node->open_fds_;
  auto it = std::find(fds.begin(), fds.end(), fd);
  if (it != fds.end()) fds.erase(it);
  MaybeErase(node);
}

SharedFd InodeTable::AnyOpenFd(Node* node) {
  std::lock_guard lock(mu_);
  return node->open_fds_.empty() ? node->orphan_fd_ : node->open_fds_.front();
}

void InodeTable::HoldOrphanFd(Node* node, SharedFd fd) {
  if (node->orphan_fd_) --orphan_fds_;
  node->orphan_fd_ = std::move(fd);
  if (node->orphan_fd_) ++orphan_fds_;
}

void InodeTable::SetOrphanFd(Node* node, SharedFd fd) {
  std::lock_guard lock(mu_);
  HoldOrphanFd(node, std::move(fd));
}

bool InodeTable::KeepOrphan(Node* node, SharedFd fd, const struct stat& st) {
  std::lock_guard lock(mu_);
  if (node->orphan_fd_ || orphan_fds_ < orphan_budget_) {
    HoldOrphanFd(node, std::move(fd));
    return true;
  }
  node->last_attr_ = std::make_unique<struct stat>(st);
  // The name just removed no longer counts (links never looked up may remain).
  nlink_t& links = node->last_attr_->st_nlink;
  links = S_ISDIR(st.st_mode) || links == 0 ? 0 : links - 1;
  return false;
}

void InodeTable::SetOrphanBudget(size_t budget) {
  std::lock_guard lock(mu_);
  orphan_budget_ = budget;
}

size_t InodeTable::orphan_fds() {
  std::lock_guard lock(mu_);
  return orphan_fds_;
}

std::optional<struct stat> InodeTable::LastAttr(Node* node) {
  std::lock_guard lock(mu_);
  if (!node->last_attr_) return std::nullopt;
  return *node->last_attr_;
}

void InodeTable::SetLastAttr(Node* node, const struct stat& st) {
  std::lock_guard lock(mu_);
  if (node->last_attr_) *node->last_attr_ = st;
}

BackingId InodeTable::Backing(Node* node) {
  std::lock_guard lock(mu_);
  return node->backing_;
}

NodePin InodeTable::Pin(Node* node) {
  std::lock_guard lock(mu_);
  node->pins_++;
  return NodePin(this, node);
}

void InodeTable::Unpin(Node* node) {
  std::lock_guard lock(mu_);
  assert(node->pins_ > 0);
  node->pins_--;
  MaybeErase(node);
}

size_t InodeTable::size() {
  std::lock_guard lock(mu_);
  return nodes_.size();
}

uint64_t InodeTable::LookupCount(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(id);
  return it == nodes_.end() ? 0 : it->second->nlookup_;
}

}  // namespace detourfs
