// InodeTable: node ids, lookup counts, aliases and the pid index.
#include "inodes/inode_table.h"

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

InodeTable::InodeTable(uint64_t root_pid, const Binding& root_binding) {
  MutexLock lock(&mu_);
  auto root = std::unique_ptr<Node>(new Node(kRootId, root_pid, S_IFDIR, root_binding));
  root->nlookup_ = 1;  // never forgotten
  root_ = root.get();
  nodes_.emplace(kRootId, std::move(root));
}

Node* InodeTable::NewNode(uint64_t pid, mode_t type, const Binding& binding) {
  auto owned = std::unique_ptr<Node>(new Node(next_id_++, pid, type, binding));
  Node* node = owned.get();
  nodes_.emplace(node->id_, std::move(owned));
  auto [it, inserted] = by_pid_.emplace(pid, node);
  if (!inserted) {
    // An older node of that pid no longer stands for the file (its type
    // changed, or it was replaced): the new one takes the index.
    it->second->indexed_ = false;
    it->second = node;
  }
  node->indexed_ = true;
  return node;
}

NodePin InodeTable::Find(uint64_t id) {
  MutexLock lock(&mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return {};
  it->second->pins_++;
  return NodePin(this, it->second.get());
}

NodePin InodeTable::FindByPid(uint64_t pid, mode_t type) {
  MutexLock lock(&mu_);
  auto it = by_pid_.find(pid);
  if (it == by_pid_.end()) return {};
  Node* node = it->second;
  if (node->type_ != (type & S_IFMT)) {
    UnindexLocked(node);
    return {};
  }
  node->pins_++;
  return NodePin(this, node);
}

bool InodeTable::HasPid(uint64_t pid) {
  MutexLock lock(&mu_);
  return by_pid_.count(pid) != 0;
}

NodePin InodeTable::Remember(Node* parent, std::string_view name, uint64_t pid, mode_t type,
                             const Binding& binding, bool lookup, bool* created, bool single_name) {
  MutexLock lock(&mu_);
  Node* node = nullptr;
  if (auto it = by_pid_.find(pid); it != by_pid_.end()) {
    node = it->second;
    const bool elsewhere =
        single_name && !node->is_dir() && !node->aliases_.empty() &&
        std::none_of(node->aliases_.begin(), node->aliases_.end(),
                     [&](const Node::Alias& a) { return a.parent == parent && a.name == name; });
    if (node->type_ != (type & S_IFMT) || elsewhere) {
      UnindexLocked(node);
      node = nullptr;
    }
  }
  if (created) *created = node == nullptr;
  if (!node) node = NewNode(pid, type & S_IFMT, binding);
  if (node->is_dir() && !node->aliases_.empty()) {
    // A directory has one name; finding it under another means it moved.
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
  if (lookup) node->nlookup_++;
  node->pins_++;
  return NodePin(this, node);
}

NodePin InodeTable::Fresh(uint64_t pid, mode_t type, const Binding& binding) {
  MutexLock lock(&mu_);
  Node* node = NewNode(pid, type & S_IFMT, binding);
  node->pins_++;
  return NodePin(this, node);
}

void InodeTable::AddLookup(Node* node) {
  MutexLock lock(&mu_);
  node->nlookup_++;
}

void InodeTable::AddAlias(Node* node, Node* parent, std::string_view name) {
  auto& aliases = node->aliases_;
  auto it = std::find_if(aliases.begin(), aliases.end(), [&](const Node::Alias& a) {
    return a.parent == parent && a.name == name;
  });
  if (it != aliases.end()) {
    std::rotate(aliases.begin(), it, it + 1);  // the name used last first
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

std::optional<std::string> InodeTable::PathOf(Node* node) {
  MutexLock lock(&mu_);
  std::vector<const std::string*> names;
  for (Node* n = node; n != root_;) {
    if (n->aliases_.empty()) return std::nullopt;
    const Node::Alias& a = n->aliases_.front();
    names.push_back(&a.name);
    n = a.parent;
  }
  std::string path;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!path.empty()) path += '/';
    path += **it;
  }
  return path;
}

std::vector<Location> InodeTable::Locations(Node* node) {
  MutexLock lock(&mu_);
  std::vector<Location> out;
  out.reserve(node->aliases_.size());
  for (const Node::Alias& a : node->aliases_) {
    a.parent->pins_++;
    out.push_back(Location{NodePin(this, a.parent), a.name});
  }
  return out;
}

size_t InodeTable::AliasCount(Node* node) {
  MutexLock lock(&mu_);
  return node->aliases_.size();
}

bool InodeTable::IsWithin(Node* node, Node* ancestor) {
  MutexLock lock(&mu_);
  for (Node* n = node;;) {
    if (n == ancestor) return true;
    if (n == root_ || n->aliases_.empty()) return false;
    n = n->aliases_.front().parent;
  }
}

std::vector<NodePin> InodeTable::NodesWithin(Node* root) {
  MutexLock lock(&mu_);
  std::vector<NodePin> out;
  for (auto& [id, owned] : nodes_) {
    Node* node = owned.get();
    if (node == root) continue;
    for (Node* n = node; n != root_ && !n->aliases_.empty();) {
      n = n->aliases_.front().parent;
      if (n == root) {
        node->pins_++;
        out.emplace_back(this, node);
        break;
      }
    }
  }
  return out;
}

bool InodeTable::IsWithinId(uint64_t id, Node* ancestor) {
  MutexLock lock(&mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return false;
  for (Node* n = it->second.get();;) {
    if (n == ancestor) return true;
    if (n == root_ || n->aliases_.empty()) return false;
    n = n->aliases_.front().parent;
  }
}

void InodeTable::UnindexLocked(Node* node) {
  if (!node->indexed_) return;
  auto it = by_pid_.find(node->pid_);
  if (it != by_pid_.end() && it->second == node) by_pid_.erase(it);
  node->indexed_ = false;
}

void InodeTable::Unindex(Node* node) {
  MutexLock lock(&mu_);
  UnindexLocked(node);
}

void InodeTable::MaybeErase(Node* node) {
  // Iterative: releasing a node's pins on its parents may free them in turn.
  std::vector<Node*> pending{node};
  while (!pending.empty()) {
    Node* n = pending.back();
    pending.pop_back();
    if (n == nullptr || n == root_ || n->nlookup_ != 0 || n->pins_ != 0 || n->handles_ != 0) {
      continue;
    }
    UnindexLocked(n);
    std::vector<Node::Alias> aliases = std::move(n->aliases_);
    if (n->orphan_fd_) --orphan_fds_;
    nodes_.erase(n->id_);
    for (const Node::Alias& a : aliases) {
      a.parent->pins_--;
      pending.push_back(a.parent);
    }
  }
}

bool InodeTable::Forget(uint64_t id, uint64_t n) {
  MutexLock lock(&mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return true;
  Node* node = it->second.get();
  node->nlookup_ -= std::min(n, node->nlookup_);
  MaybeErase(node);
  return nodes_.find(id) == nodes_.end();
}

bool InodeTable::Unlinked(Node* node, Node* parent, std::string_view name) {
  MutexLock lock(&mu_);
  node->pins_++;  // keep it while its alias goes
  RemoveAlias(node, parent, name);
  const bool last = node->aliases_.empty();
  if (last) UnindexLocked(node);
  node->pins_--;
  MaybeErase(node);
  return last;
}

void InodeTable::Renamed(Node* node, Node* old_parent, std::string_view old_name, Node* new_parent,
                         std::string_view new_name) {
  MutexLock lock(&mu_);
  node->pins_++;
  RemoveAlias(node, old_parent, old_name);
  AddAlias(node, new_parent, new_name);
  node->pins_--;
}

void InodeTable::AddHandle(Node* node) {
  MutexLock lock(&mu_);
  node->handles_++;
}

void InodeTable::RemoveHandle(Node* node) {
  MutexLock lock(&mu_);
  assert(node->handles_ > 0);
  node->handles_--;
  MaybeErase(node);
}

bool InodeTable::KeepOrphan(Node* node, SharedFd fd, const struct stat& st) {
  MutexLock lock(&mu_);
  if (node->orphan_fd_ || orphan_fds_ < orphan_budget_) {
    if (!node->orphan_fd_) ++orphan_fds_;
    node->orphan_fd_ = std::move(fd);
    return true;
  }
  node->last_attr_ = std::make_unique<struct stat>(st);
  node->last_attr_->st_nlink = 0;
  return false;
}

SharedFd InodeTable::OrphanFd(Node* node) {
  MutexLock lock(&mu_);
  return node->orphan_fd_;
}

std::optional<struct stat> InodeTable::LastAttr(Node* node) {
  MutexLock lock(&mu_);
  if (!node->last_attr_) return std::nullopt;
  return *node->last_attr_;
}

void InodeTable::SetLastAttr(Node* node, const struct stat& st) {
  MutexLock lock(&mu_);
  if (node->last_attr_) *node->last_attr_ = st;
}

void InodeTable::SetOrphanBudget(size_t budget) {
  MutexLock lock(&mu_);
  orphan_budget_ = budget;
}

size_t InodeTable::orphan_fds() {
  MutexLock lock(&mu_);
  return orphan_fds_;
}

NodePin InodeTable::Pin(Node* node) {
  MutexLock lock(&mu_);
  node->pins_++;
  return NodePin(this, node);
}

void InodeTable::Unpin(Node* node) {
  MutexLock lock(&mu_);
  assert(node->pins_ > 0);
  node->pins_--;
  MaybeErase(node);
}

size_t InodeTable::size() {
  MutexLock lock(&mu_);
  return nodes_.size();
}

uint64_t InodeTable::LookupCount(uint64_t id) {
  MutexLock lock(&mu_);
  auto it = nodes_.find(id);
  return it == nodes_.end() ? 0 : it->second->nlookup_;
}

}  // namespace detourfs
