// InodeTable: lookup counting, pins, aliases, hard links, the pid index,
// identity reuse, erasure, orphans.
#include "inodes/inode_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace detourfs {
namespace {

Binding VolumeBinding() {
  Binding b;
  b.layer = Layer::kVolume;
  b.parts[Index(Layer::kVolume)] = Part{Part::kPresent, 7, 1};
  return b;
}

struct stat Stat(ino_t ino, mode_t type, nlink_t nlink = 1) {
  struct stat st {};
  st.st_dev = 7;
  st.st_ino = ino;
  st.st_mode = type | 0644;
  st.st_nlink = nlink;
  return st;
}

SharedFd NullFd() {
  return std::make_shared<const UniqueFd>(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

class InodeTableTest : public ::testing::Test {
 protected:
  InodeTableTest() : table_(2, VolumeBinding()) {}

  // A lookup of `name` in `parent` (one kernel reference); returns the node,
  // unpinned (the lookup keeps it).
  Node* Look(Node* parent, std::string_view name, uint64_t pid, mode_t type,
             bool* created = nullptr, bool single_name = false) {
    NodePin pin = table_.Remember(parent, name, pid, type, VolumeBinding(), /*lookup=*/true,
                                  created, single_name);
    return pin.get();
  }

  InodeTable table_;
};

TEST_F(InodeTableTest, RootIsFuseRootIdAndNeverForgotten) {
  Node* root = table_.root();
  EXPECT_EQ(root->id(), InodeTable::kRootId);
  EXPECT_EQ(root->id(), 1U);
  EXPECT_EQ(root->pid(), 2U);
  EXPECT_TRUE(root->is_dir());
  EXPECT_FALSE(table_.Forget(1, 100));
  EXPECT_EQ(table_.Find(1).get(), root);
  EXPECT_EQ(table_.PathOf(root), std::optional<std::string>(""));
  EXPECT_EQ(table_.size(), 1U);
}

TEST_F(InodeTableTest, LookupsCountAndTheLastForgetErases) {
  bool created = false;
  Node* a = Look(table_.root(), "a", 10, S_IFREG, &created);
  EXPECT_TRUE(created);
  EXPECT_EQ(Look(table_.root(), "a", 10, S_IFREG, &created), a);
  EXPECT_FALSE(created);
  const uint64_t id = a->id();
  EXPECT_EQ(table_.LookupCount(id), 2U);
  EXPECT_FALSE(table_.Forget(id, 1));
  EXPECT_EQ(table_.Find(id).get(), a);
  EXPECT_TRUE(table_.Forget(id, 1));
  EXPECT_FALSE(table_.Find(id));
  EXPECT_EQ(table_.LookupCount(id), 0U);
  EXPECT_EQ(table_.size(), 1U);
  EXPECT_TRUE(table_.Forget(id, 1)) << "forgetting an erased node is harmless";
}

TEST_F(InodeTableTest, ForgetMoreThanWasLookedUpErases) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  EXPECT_TRUE(table_.Forget(a->id(), 1000));
  EXPECT_EQ(table_.size(), 1U);
}

TEST_F(InodeTableTest, AddLookupTakesAnotherReference) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  table_.AddLookup(a);
  EXPECT_EQ(table_.LookupCount(a->id()), 2U);
  EXPECT_FALSE(table_.Forget(a->id(), 1));
  EXPECT_TRUE(table_.Forget(a->id(), 1));
}

TEST_F(InodeTableTest, RememberWithoutLookupLivesOnlyWhilePinned) {
  uint64_t id = 0;
  {
    NodePin pin = table_.Remember(table_.root(), "a", 10, S_IFREG, VolumeBinding(), false);
    ASSERT_TRUE(pin);
    id = pin->id();
    EXPECT_EQ(table_.LookupCount(id), 0U);
    EXPECT_EQ(table_.Find(id).get(), pin.get());
  }
  EXPECT_FALSE(table_.Find(id));
  EXPECT_EQ(table_.size(), 1U);
}

TEST_F(InodeTableTest, NodeIdsAreNeverReused) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  const uint64_t first = a->id();
  ASSERT_TRUE(table_.Forget(first, 1));
  Node* b = Look(table_.root(), "a", 10, S_IFREG);
  EXPECT_NE(b->id(), first);
  EXPECT_EQ(b->pid(), 10U);
}

TEST_F(InodeTableTest, HardLinksShareOneNodeWithTwoAliases) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  Node* b = Look(table_.root(), "b", 10, S_IFREG);
  EXPECT_EQ(a, b);
  EXPECT_EQ(table_.AliasCount(a), 2U);
  std::vector<Location> locs = table_.Locations(a);
  ASSERT_EQ(locs.size(), 2U);
  EXPECT_EQ(locs[0].name, "b");  // most recent first
  EXPECT_EQ(locs[1].name, "a");
  EXPECT_EQ(locs[0].parent.get(), table_.root());
  EXPECT_EQ(table_.PathOf(a), std::optional<std::string>("b"));
  // Using the older name again makes it the most recent.
  Look(table_.root(), "a", 10, S_IFREG);
  EXPECT_EQ(table_.Locations(a)[0].name, "a");
  EXPECT_EQ(table_.AliasCount(a), 2U) << "a name is recorded once";
}

TEST_F(InodeTableTest, FindByPidFindsTheLiveNodeOfThatType) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  EXPECT_EQ(table_.FindByPid(10, S_IFREG).get(), a);
  EXPECT_EQ(table_.FindByPid(10, S_IFREG | 0644).get(), a) << "permission bits are ignored";
  EXPECT_FALSE(table_.FindByPid(11, S_IFREG));
}

TEST_F(InodeTableTest, FindByPidOfAnotherTypeDropsTheStaleNodeFromTheIndex) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  EXPECT_FALSE(table_.FindByPid(10, S_IFDIR));
  EXPECT_FALSE(table_.FindByPid(10, S_IFREG)) << "the stale node left the index";
  EXPECT_EQ(table_.Find(a->id()).get(), a) << "but still serves the kernel's references";
  bool created = false;
  EXPECT_NE(Look(table_.root(), "a", 10, S_IFREG, &created), a);
  EXPECT_TRUE(created);
}

TEST_F(InodeTableTest, TypeChangeOnTheSamePidMakesANewNode) {
  Node* f = Look(table_.root(), "x", 10, S_IFREG);
  Node* d = Look(table_.root(), "x", 10, S_IFDIR);
  EXPECT_NE(f, d);
  EXPECT_TRUE(d->is_dir());
  EXPECT_EQ(table_.FindByPid(10, S_IFDIR).get(), d);
  EXPECT_EQ(table_.Find(f->id()).get(), f) << "the old node lives while the kernel holds it";
}

TEST_F(InodeTableTest, SingleNameFileFoundElsewhereIsANewNode) {
  // `a` had pid 10; underneath the mount it was deleted and a new file `b`
  // got the same inode number (one link): `b` is not `a`.
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  bool created = false;
  Node* b = Look(table_.root(), "b", 10, S_IFREG, &created, /*single_name=*/true);
  EXPECT_NE(a, b);
  EXPECT_TRUE(created);
  EXPECT_EQ(table_.FindByPid(10, S_IFREG).get(), b);
  // Found again under its own name, a single-link file is the same node.
  EXPECT_EQ(Look(table_.root(), "b", 10, S_IFREG, &created, true), b);
  EXPECT_FALSE(created);
}

TEST_F(InodeTableTest, ParentLivesWhileAChildNamesIt) {
  Node* dir = Look(table_.root(), "d", 20, S_IFDIR);
  Node* file = Look(dir, "f", 21, S_IFREG);
  const uint64_t dir_id = dir->id();
  EXPECT_FALSE(table_.Forget(dir_id, 1));
  ASSERT_EQ(table_.Find(dir_id).get(), dir) << "a child's alias pins its parent";
  EXPECT_EQ(table_.PathOf(file), std::optional<std::string>("d/f"));
  EXPECT_TRUE(table_.Forget(file->id(), 1));
  EXPECT_FALSE(table_.Find(dir_id)) << "the parent goes with its last child";
  EXPECT_EQ(table_.size(), 1U);
}

TEST_F(InodeTableTest, DirectoryFoundUnderANewNameFollowsItAndLetsGoOfItsOldParent) {
  Node* p = Look(table_.root(), "p", 20, S_IFDIR);
  Node* d = Look(p, "old", 21, S_IFDIR);
  const uint64_t p_id = p->id();
  EXPECT_FALSE(table_.Forget(p_id, 1)) << "held by d's alias";
  EXPECT_EQ(Look(table_.root(), "new", 21, S_IFDIR), d);
  std::vector<Location> locs = table_.Locations(d);
  ASSERT_EQ(locs.size(), 1U) << "a directory has one name";
  EXPECT_EQ(locs[0].name, "new");
  EXPECT_EQ(locs[0].parent.get(), table_.root());
  locs.clear();
  EXPECT_FALSE(table_.Find(p_id)) << "its old parent is no longer pinned";
  EXPECT_EQ(table_.PathOf(d), std::optional<std::string>("new"));
}

TEST_F(InodeTableTest, DeepChainIsErasedWithoutRecursion) {
  Node* parent = table_.root();
  std::vector<uint64_t> ids;
  constexpr int kDepth = 100000;
  for (int i = 0; i < kDepth; ++i) {
    parent = Look(parent, "d", 1000 + i, S_IFDIR);
    ids.push_back(parent->id());
  }
  EXPECT_EQ(table_.size(), static_cast<size_t>(kDepth) + 1);
  // Forgotten top down: each stays pinned by its child until the deepest
  // goes, which takes the whole chain with it.
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_FALSE(table_.Forget(ids[i], 1));
  EXPECT_EQ(table_.size(), static_cast<size_t>(kDepth) + 1);
  EXPECT_TRUE(table_.Forget(ids.back(), 1));
  EXPECT_EQ(table_.size(), 1U);
}

TEST_F(InodeTableTest, LastUnlinkDropsIdentitySoAReusedPidIsANewNode) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  EXPECT_TRUE(table_.Unlinked(a, table_.root(), "a"));
  EXPECT_FALSE(table_.FindByPid(10, S_IFREG));
  EXPECT_TRUE(table_.Locations(a).empty());
  EXPECT_EQ(table_.PathOf(a), std::nullopt);
  // The kernel still holds `a` (e.g. open); a new file gets pid 10.
  Node* b = Look(table_.root(), "b", 10, S_IFREG);
  EXPECT_NE(a, b);
  EXPECT_EQ(table_.Find(a->id()).get(), a);
  EXPECT_TRUE(table_.Forget(a->id(), 1));
  EXPECT_EQ(table_.Find(b->id()).get(), b);
}

TEST_F(InodeTableTest, UnlinkOfOneHardLinkKeepsIdentity) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  Look(table_.root(), "b", 10, S_IFREG);
  EXPECT_FALSE(table_.Unlinked(a, table_.root(), "a"));
  EXPECT_EQ(table_.FindByPid(10, S_IFREG).get(), a);
  std::vector<Location> locs = table_.Locations(a);
  ASSERT_EQ(locs.size(), 1U);
  EXPECT_EQ(locs[0].name, "b");
}

TEST_F(InodeTableTest, UnlinkedDirectoryLetsGoOfItsParent) {
  Node* p = Look(table_.root(), "p", 20, S_IFDIR);
  Node* d = Look(p, "d", 21, S_IFDIR);
  ASSERT_FALSE(table_.Forget(p->id(), 1));
  const uint64_t p_id = p->id();
  EXPECT_TRUE(table_.Unlinked(d, p, "d"));
  EXPECT_FALSE(table_.Find(p_id)) << "nothing names p any more";
  EXPECT_EQ(table_.Find(d->id()).get(), d);
}

TEST_F(InodeTableTest, RenameMovesTheAlias) {
  Node* d = Look(table_.root(), "d", 20, S_IFDIR);
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  table_.Renamed(a, table_.root(), "a", d, "b");
  std::vector<Location> locs = table_.Locations(a);
  ASSERT_EQ(locs.size(), 1U);
  EXPECT_EQ(locs[0].parent.get(), d);
  EXPECT_EQ(locs[0].name, "b");
  EXPECT_EQ(table_.PathOf(a), std::optional<std::string>("d/b"));
  EXPECT_EQ(table_.FindByPid(10, S_IFREG).get(), a) << "a rename keeps identity";
}

TEST_F(InodeTableTest, RenameWithinOneDirectory) {
  Node* d = Look(table_.root(), "d", 20, S_IFDIR);
  Node* a = Look(d, "a", 10, S_IFREG);
  table_.Renamed(a, d, "a", d, "z");
  EXPECT_EQ(table_.PathOf(a), std::optional<std::string>("d/z"));
  EXPECT_EQ(table_.AliasCount(a), 1U);
}

TEST_F(InodeTableTest, WithinFollowsMostRecentNames) {
  Node* d = Look(table_.root(), "d", 20, S_IFDIR);
  Node* e = Look(d, "e", 21, S_IFDIR);
  Node* f = Look(e, "f", 22, S_IFREG);
  Node* g = Look(table_.root(), "g", 23, S_IFREG);
  EXPECT_TRUE(table_.IsWithin(f, d));
  EXPECT_TRUE(table_.IsWithin(d, d));
  EXPECT_TRUE(table_.IsWithin(f, table_.root()));
  EXPECT_FALSE(table_.IsWithin(g, d));
  EXPECT_FALSE(table_.IsWithin(d, e));
  EXPECT_TRUE(table_.IsWithinId(f->id(), e));
  EXPECT_FALSE(table_.IsWithinId(9999, table_.root())) << "no such node";

  std::vector<NodePin> within = table_.NodesWithin(d);
  std::vector<Node*> nodes;
  for (const NodePin& p : within) nodes.push_back(p.get());
  EXPECT_EQ(nodes.size(), 2U);
  EXPECT_NE(std::find(nodes.begin(), nodes.end(), e), nodes.end());
  EXPECT_NE(std::find(nodes.begin(), nodes.end(), f), nodes.end());
  EXPECT_EQ(std::find(nodes.begin(), nodes.end(), d), nodes.end()) << "the root is not included";
  EXPECT_EQ(table_.NodesWithin(table_.root()).size(), 4U);

  // f moves out of d: it is no longer within.
  table_.Renamed(f, e, "f", table_.root(), "f");
  EXPECT_FALSE(table_.IsWithin(f, d));
  EXPECT_EQ(table_.NodesWithin(d).size(), 1U);
}

TEST_F(InodeTableTest, FreshNodeIsIndexedButNamelessUntilRemembered) {
  uint64_t id = 0;
  {
    NodePin fresh = table_.Fresh(50, S_IFREG | 0600, VolumeBinding());
    ASSERT_TRUE(fresh);
    id = fresh->id();
    EXPECT_EQ(fresh->type(), static_cast<mode_t>(S_IFREG));
    EXPECT_EQ(table_.FindByPid(50, S_IFREG).get(), fresh.get());
    EXPECT_EQ(table_.PathOf(fresh.get()), std::nullopt);
    EXPECT_EQ(table_.AliasCount(fresh.get()), 0U);
    // Its name published: found by pid, the same node.
    EXPECT_EQ(Look(table_.root(), "moved", 50, S_IFREG), fresh.get());
  }
  EXPECT_EQ(table_.PathOf(table_.Find(id).get()), std::optional<std::string>("moved"));
}

TEST_F(InodeTableTest, UnindexedNodeIsNoLongerFoundByPid) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  table_.Unindex(a);
  EXPECT_FALSE(table_.FindByPid(10, S_IFREG));
  EXPECT_NE(Look(table_.root(), "a", 10, S_IFREG), a);
}

TEST_F(InodeTableTest, OpenHandleKeepsNodeAfterForget) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  const uint64_t id = a->id();
  table_.AddHandle(a);
  EXPECT_FALSE(table_.Forget(id, 1));
  EXPECT_EQ(table_.Find(id).get(), a);
  table_.RemoveHandle(a);
  EXPECT_FALSE(table_.Find(id));
}

TEST_F(InodeTableTest, PinKeepsNodeUntilReleased) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  const uint64_t id = a->id();
  {
    NodePin pin = table_.Pin(a);
    EXPECT_FALSE(table_.Forget(id, 1));
    EXPECT_EQ(table_.Find(id).get(), a);
    NodePin moved = std::move(pin);
    EXPECT_FALSE(pin);  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(moved.get(), a);
    NodePin other = table_.Pin(table_.root());
    other = std::move(moved);  // releases the root's pin, takes a's
    EXPECT_EQ(other.get(), a);
    EXPECT_EQ(table_.Find(id).get(), a);
  }
  EXPECT_FALSE(table_.Find(id));
}

// Removed files the kernel still holds keep an fd only up to the budget; past
// it they keep their last attributes, and a forgotten one frees its place.
TEST_F(InodeTableTest, OrphanFdsStopAtTheBudgetAndLeaveAttributes) {
  table_.SetOrphanBudget(2);
  std::vector<Node*> orphans;
  for (ino_t ino = 30; ino < 33; ++ino) {
    const std::string name = "f" + std::to_string(ino);
    Node* n = Look(table_.root(), name, ino, S_IFREG);
    ASSERT_TRUE(table_.Unlinked(n, table_.root(), name));
    orphans.push_back(n);
  }
  SharedFd kept = NullFd();
  EXPECT_TRUE(table_.KeepOrphan(orphans[0], kept, Stat(30, S_IFREG)));
  EXPECT_TRUE(table_.KeepOrphan(orphans[1], NullFd(), Stat(31, S_IFREG)));
  EXPECT_FALSE(table_.KeepOrphan(orphans[2], NullFd(), Stat(32, S_IFREG, 3)));
  EXPECT_EQ(table_.orphan_fds(), 2U);
  EXPECT_EQ(table_.OrphanFd(orphans[0]), kept);
  EXPECT_EQ(table_.OrphanFd(orphans[2]), nullptr);
  EXPECT_FALSE(table_.LastAttr(orphans[0]).has_value());
  std::optional<struct stat> last = table_.LastAttr(orphans[2]);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->st_ino, 32U);
  EXPECT_EQ(last->st_nlink, 0U) << "it has no name left";
  struct stat changed = *last;
  changed.st_mode = S_IFREG | 0600;
  table_.SetLastAttr(orphans[2], changed);
  EXPECT_EQ(table_.LastAttr(orphans[2])->st_mode, S_IFREG | 0600U);

  // Keeping a new fd for a node that has one takes no more of the budget.
  EXPECT_TRUE(table_.KeepOrphan(orphans[1], NullFd(), Stat(31, S_IFREG)));
  EXPECT_EQ(table_.orphan_fds(), 2U);

  EXPECT_TRUE(table_.Forget(orphans[0]->id(), 1));  // the kernel forgets one: its fd goes
  EXPECT_EQ(table_.orphan_fds(), 1U);
  Node* d = Look(table_.root(), "d", 40, S_IFDIR);
  ASSERT_TRUE(table_.Unlinked(d, table_.root(), "d"));
  EXPECT_TRUE(table_.KeepOrphan(d, NullFd(), Stat(40, S_IFDIR, 2)));
  EXPECT_EQ(table_.orphan_fds(), 2U);
}

TEST_F(InodeTableTest, SetLastAttrWithoutAnOrphanRecordIsIgnored) {
  Node* a = Look(table_.root(), "a", 10, S_IFREG);
  table_.SetLastAttr(a, Stat(10, S_IFREG));
  EXPECT_FALSE(table_.LastAttr(a).has_value());
}

TEST_F(InodeTableTest, NamespaceGenerationOnlyGrows) {
  const uint64_t before = table_.namespace_gen();
  table_.BumpNamespace();
  table_.BumpNamespace();
  EXPECT_EQ(table_.namespace_gen(), before + 2);
}

TEST_F(InodeTableTest, RememberKeepsTheBindingOfANewNodeOnly) {
  Binding tier;
  tier.layer = Layer::kMemory;
  tier.parts[Index(Layer::kMemory)] = Part{Part::kPresent, 9, 99};
  NodePin a = table_.Remember(table_.root(), "a", 10, S_IFREG, tier, true);
  EXPECT_EQ(a->Snapshot().layer, Layer::kMemory);
  EXPECT_TRUE(a->Snapshot().home().present());
  NodePin again = table_.Remember(table_.root(), "a", 10, S_IFREG, VolumeBinding(), true);
  EXPECT_EQ(again.get(), a.get());
  EXPECT_EQ(again->Snapshot().layer, Layer::kMemory) << "a found node keeps its binding";
}

}  // namespace
}  // namespace detourfs
