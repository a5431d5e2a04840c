// InodeTable: lookup counting, aliases, hard links, identity reuse, erasure.
#include "detourfs/inode_table.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace detourfs {
namespace {

struct stat Stat(ino_t ino, mode_t type, nlink_t nlink = 1) {
  struct stat st {};
  st.st_dev = 7;
  st.st_ino = ino;
  st.st_mode = type | 0644;
  st.st_nlink = nlink;
  return st;
}

class InodeTableTest : public ::testing::Test {
 protected:
  InodeTableTest() : table_(Stat(2, S_IFDIR)) {}
  InodeTable table_;
};

TEST_F(InodeTableTest, RootIsFuseRootIdAndNeverForgotten) {
  EXPECT_EQ(table_.root()->id(), 1U);
  table_.Forget(1, 100);
  EXPECT_EQ(table_.Find(1), table_.root());
}

TEST_F(InodeTableTest, LookupsCountAndForgetErases) {
  Node* a = table_.Remember(table_.root(), "a", Stat(10, S_IFREG));
  EXPECT_EQ(table_.Remember(table_.root(), "a", Stat(10, S_IFREG)), a);
  EXPECT_EQ(table_.LookupCount(a->id()), 2U);
  const uint64_t id = a->id();
  table_.Forget(id, 1);
  EXPECT_EQ(table_.Find(id), a);
  table_.Forget(id, 1);
  EXPECT_EQ(table_.Find(id), nullptr);
  EXPECT_EQ(table_.size(), 1U);
}

TEST_F(InodeTableTest, NodeIdsAreNeverReused) {
  Node* a = table_.Remember(table_.root(), "a", Stat(10, S_IFREG));
  const uint64_t first = a->id();
  table_.Forget(first, 1);
  Node* b = table_.Remember(table_.root(), "a", Stat(10, S_IFREG));
  EXPECT_NE(b->id(), first);
}

TEST_F(InodeTableTest, HardLinksShareOneNodeWithTwoAliases) {
  Node* a = table_.Remember(table_.root(), "a", Stat(10, S_IFREG, 2));
  Node* b = table_.Remember(table_.root(), "b", Stat(10, S_IFREG, 2));
  EXPECT_EQ(a, b);
  std::vector<Location> locs = table_.Locations(a);
  ASSERT_EQ(locs.size(), 2U);
  EXPECT_EQ(locs[0].name, "b");  // most recent first
  EXPECT_EQ(locs[1].name, "a");
}

TEST_F(InodeTableTest, ParentLivesWhileAChildNamesIt) {
  Node* dir = table_.Remember(table_.root(), "d", Stat(20, S_IFDIR));
  Node* file = table_.Remember(dir, "f", Stat(21, S_IFREG));
  const uint64_t dir_id = dir->id();
  table_.Forget(dir_id, 1);
  ASSERT_EQ(table_.Find(dir_id), dir) << "a child's alias pins its parent";
  table_.Forget(file->id(), 1);
  EXPECT_EQ(table_.Find(dir_id), nullptr) << "the parent goes with its last child";
  EXPECT_EQ(table_.size(), 1U);
}

TEST_F(InodeTableTest, DeepChainIsErasedWithoutRecursionLimits) {
  Node* parent = table_.root();
  std::vector<uint64_t> ids;
  for (int i = 0; i < 100000; ++i) {
    parent = table_.Remember(parent, "d", Stat(1000 + i, S_IFDIR));
    ids.push_back(parent->id());
  }
  for (uint64_t id : ids) table_.Forget(id, 1);
  EXPECT_EQ(table_.size(), 1U);
}

TEST_F(InodeTableTest, LastUnlinkDropsIdentitySoAReusedInodeNumberIsANewNode) {
  Node* a = table_.Remember(table_.root(), "a", Stat(10, S_IFREG));
  EXPECT_EQ(table_.Unlinked(table_.root(), "a", Stat(10, S_IFREG, 1)), a->id());
  // The kernel still holds `a` (e.g. open); a new file gets inode 10.
  Node* b = table_.Remember(table_.root(), "b", Stat(10, S_IFREG));
  EXPECT_NE(a, b);
  EXPECT_TRUE(table_.Locations(a).empty());
}

TEST_F(InodeTableTest, RemovedTreeDropsIdentityAndNamesSoReusedInodeNumbersAreNewNodes) {
  // d/f on a layer, looked up; then the whole of d is removed by the daemon.
  Node* d = table_.Remember(table_.root(), "d", Stat(20, S_IFDIR));
  Node* f = table_.Remember(d, "f", Stat(21, S_IFREG));
  Node* g = table_.Remember(d, "g", Stat(22, S_IFREG, 2));  // has a link elsewhere
  table_.Removed(Stat(21, S_IFREG));
  table_.Removed(Stat(22, S_IFREG, 2));
  table_.Removed(Stat(20, S_IFDIR));
  EXPECT_TRUE(table_.Locations(f).empty());
  EXPECT_TRUE(table_.Locations(d).empty());
  EXPECT_EQ(table_.Locations(g).size(), 1U);  // a file with links left is not gone
  // New files given the freed inode numbers, of the same types, are new nodes.
  EXPECT_NE(table_.Remember(table_.root(), "d", Stat(20, S_IFDIR)), d);
  EXPECT_NE(table_.Remember(table_.root(), "x", Stat(21, S_IFREG)), f);
  // The kernel still holds the old nodes until it forgets them.
  EXPECT_EQ(table_.Find(f->id()), f);
}

TEST_F(InodeTableTest, UnlinkOfOneHardLinkKeepsIdentity) {
  Node* a = table_.Remember(table_.root(), "a", Stat(10, S_IFREG, 2));
  table_.Remember(table_.root(), "b", Stat(10, S_IFREG, 2));
  EXPECT_EQ(table_.Unlinked(table_.root(), "a", Stat(10, S_IFREG, 2)), 0U);
  EXPECT_EQ(table_.Remember(table_.root(), "b", Stat(10, S_IFREG, 1)), a);
  ASSERT_EQ(table_.Locations(a).size(), 1U);
  EXPECT_EQ(table_.Locations(a)[0].name, "b");
}

TEST_F(InodeTableTest, RenameMovesTheAlias) {
  Node* d = table_.Remember(table_.root(), "d", Stat(20, S_IFDIR));
  Node* a = table_.Remember(table_.root(), "a", Stat(10, S_IFREG));
  table_.Renamed(Stat(10, S_IFREG), table_.root(), "a", d, "b");
  std::vector<Location> locs = table_.Locations(a);
  ASSERT_EQ(locs.size(), 1U);
  EXPECT_EQ(locs[0].parent.get(), d);
  EXPECT_EQ(locs[0].name, "b");
}

TEST_F(InodeTableTest, DirectoryFoundUnderANewNameFollowsIt) {
  Node* d = table_.Remember(table_.root(), "old", Stat(20, S_IFDIR));
  EXPECT_EQ(table_.Remember(table_.root(), "new", Stat(20, S_IFDIR)), d);
  std::vector<Location> locs = table_.Locations(d);
  ASSERT_EQ(locs.size(), 1U);
  EXPECT_EQ(locs[0].name, "new");
}

TEST_F(InodeTableTest, TypeChangeOnSameInodeNumberMakesANewNode) {
  Node* f = table_.Remember(table_.root(), "x", Stat(10, S_IFREG));
  Node* d = table_.Remember(table_.root(), "x", Stat(10, S_IFDIR));
  EXPECT_NE(f, d);
  EXPECT_TRUE(d->is_dir());
}

TEST_F(InodeTableTest, OpenFileKeepsNodeAfterForget) {
  Node* a = table_.Remember(table_.root(), "a", Stat(10, S_IFREG));
  auto fd = std::make_shared<const UniqueFd>();
  table_.AddOpenFd(a, fd);
  const uint64_t id = a->id();
  table_.Forget(id, 1);
  EXPECT_EQ(table_.Find(id), a);
  EXPECT_EQ(table_.AnyOpenFd(a), fd);
  table_.RemoveOpenFd(a, fd);
  EXPECT_EQ(table_.Find(id), nullptr);
}

TEST_F(InodeTableTest, PinKeepsNodeUntilReleased) {
  Node* a = table_.Remember(table_.root(), "a", Stat(10, S_IFREG));
  const uint64_t id = a->id();
  {
    NodePin pin = table_.Pin(a);
    table_.Forget(id, 1);
    EXPECT_EQ(table_.Find(id), a);
  }
  EXPECT_EQ(table_.Find(id), nullptr);
}

// Removed files the kernel still holds keep an fd only up to the budget; past
// it they keep their last attributes, and a forgotten one frees its place.
TEST_F(InodeTableTest, OrphanFdsStopAtTheBudgetAndLeaveAttributes) {
  table_.SetOrphanBudget(2);
  std::vector<uint64_t> ids;
  for (ino_t ino = 30; ino < 33; ++ino) {
    const std::string name = "f" + std::to_string(ino);
    Node* n = table_.Remember(table_.root(), name, Stat(ino, S_IFREG));
    ids.push_back(table_.Unlinked(table_.root(), name, Stat(ino, S_IFREG)));
    ASSERT_EQ(ids.back(), n->id());
  }
  auto fd = [] { return std::make_shared<const UniqueFd>(); };
  EXPECT_TRUE(table_.KeepOrphan(table_.Find(ids[0]), fd(), Stat(30, S_IFREG)));
  EXPECT_TRUE(table_.KeepOrphan(table_.Find(ids[1]), fd(), Stat(31, S_IFREG)));
  EXPECT_FALSE(table_.KeepOrphan(table_.Find(ids[2]), fd(), Stat(32, S_IFREG, 3)));
  EXPECT_EQ(table_.orphan_fds(), 2U);
  EXPECT_FALSE(table_.LastAttr(table_.Find(ids[0])).has_value());
  std::optional<struct stat> last = table_.LastAttr(table_.Find(ids[2]));
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->st_ino, 32U);
  EXPECT_EQ(last->st_nlink, 2U) << "the removed name no longer counts";
  struct stat changed = *last;
  changed.st_mode = S_IFREG | 0600;
  table_.SetLastAttr(table_.Find(ids[2]), changed);
  EXPECT_EQ(table_.LastAttr(table_.Find(ids[2]))->st_mode, S_IFREG | 0600U);

  table_.Forget(ids[0], 1);  // the kernel forgets one: its fd goes
  EXPECT_EQ(table_.Find(ids[0]), nullptr);
  EXPECT_EQ(table_.orphan_fds(), 1U);
  Node* d = table_.Remember(table_.root(), "d", Stat(40, S_IFDIR));
  ASSERT_EQ(table_.Unlinked(table_.root(), "d", Stat(40, S_IFDIR, 2)), d->id());
  EXPECT_TRUE(table_.KeepOrphan(d, fd(), Stat(40, S_IFDIR, 2)));
  EXPECT_EQ(table_.orphan_fds(), 2U);
}

}  // namespace
}  // namespace detourfs
