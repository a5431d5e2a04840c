// flakyfs's UndoLog: a namespace change is durable once its directories are
// fsynced and every earlier change it depends on is durable; a cut undoes the
// rest newest first.
#include "undo_log.h"

#include <gtest/gtest.h>

namespace flakyfs {
namespace {

using Seqs = std::vector<UndoLog::Seq>;

TEST(UndoLogTest, ChangeIsDurableWhenItsDirectoryIsSynced) {
  UndoLog log;
  UndoLog::Seq a = log.Add({"d", "f"}, {"d"});
  UndoLog::Seq b = log.Add({"e", "g"}, {"e"});
  EXPECT_EQ(log.DirSynced("e"), Seqs{b});
  EXPECT_EQ(log.DirSynced("x"), Seqs{});
  EXPECT_EQ(log.TakeForUndo(), Seqs{a});
  EXPECT_EQ(log.size(), 0U);
}

TEST(UndoLogTest, OnlyChangesBeforeTheFsyncAreCovered) {
  UndoLog log;
  UndoLog::Seq a = log.Add({"d", "f"}, {"d"});
  EXPECT_EQ(log.DirSynced("d"), Seqs{a});
  UndoLog::Seq b = log.Add({"d", "g"}, {"d"});
  EXPECT_EQ(log.TakeForUndo(), Seqs{b});
}

TEST(UndoLogTest, RenameNeedsBothDirectories) {
  UndoLog log;
  UndoLog::Seq r = log.Add({"a", "b", "x"}, {"a", "b"});
  EXPECT_EQ(log.DirSynced("b"), Seqs{});
  EXPECT_EQ(log.DirSynced("b"), Seqs{});
  EXPECT_EQ(log.DirSynced("a"), Seqs{r});
}

TEST(UndoLogTest, ChangeWaitsForEarlierChangesSharingAKey) {
  UndoLog log;
  // mkdir p/s, then create s/f: f's entry is not durable while s itself is not.
  UndoLog::Seq mkdir = log.Add({"p", "s"}, {"p"});
  UndoLog::Seq create = log.Add({"s", "f"}, {"s"});
  UndoLog::Seq other = log.Add({"q", "g"}, {"q"});
  EXPECT_EQ(log.DirSynced("s"), Seqs{});
  EXPECT_EQ(log.DirSynced("q"), Seqs{other});
  // The parent's fsync settles both, in order.
  EXPECT_EQ(log.DirSynced("p"), (Seqs{mkdir, create}));
  EXPECT_EQ(log.size(), 0U);
}

TEST(UndoLogTest, ObjectKeysOrderChangesAcrossDirectories) {
  UndoLog log;
  // rename a/x -> b/x, then rename b/x -> b/y: the second builds on the first.
  UndoLog::Seq first = log.Add({"a", "b", "X"}, {"a", "b"});
  UndoLog::Seq second = log.Add({"b", "X"}, {"b"});
  EXPECT_EQ(log.DirSynced("b"), Seqs{});
  EXPECT_EQ(log.TakeForUndo(), (Seqs{second, first}));
}

TEST(UndoLogTest, CascadeReleasesAChainOfBlockedChanges) {
  UndoLog log;
  Seqs chain;
  for (int i = 0; i < 50; ++i) {
    const std::string dir = "d" + std::to_string(i);
    const std::string next = "d" + std::to_string(i + 1);
    chain.push_back(log.Add({dir, next}, {dir}));  // mkdir d_i/d_{i+1}
  }
  for (int i = 49; i >= 1; --i) EXPECT_EQ(log.DirSynced("d" + std::to_string(i)), Seqs{});
  EXPECT_EQ(log.DirSynced("d0"), chain);
}

TEST(UndoLogTest, SyncAllAndTakeForUndoEmptyTheLog) {
  UndoLog log;
  UndoLog::Seq a = log.Add({"d", "f"}, {"d"});
  UndoLog::Seq b = log.Add({"d", "g"}, {"d"});
  EXPECT_EQ(log.SyncAll(), (Seqs{a, b}));
  EXPECT_EQ(log.DirSynced("d"), Seqs{});
  UndoLog::Seq c = log.Add({"d", "f"}, {"d"});
  UndoLog::Seq d = log.Add({"e", "h"}, {"e"});
  EXPECT_EQ(log.TakeForUndo(), (Seqs{d, c}));
  EXPECT_EQ(log.TakeForUndo(), Seqs{});
}

TEST(UndoLogTest, RepeatedKeysAndDirectoriesCountOnce) {
  UndoLog log;
  UndoLog::Seq r = log.Add({"d", "d", "x"}, {"d", "d"});  // a rename within one directory
  EXPECT_EQ(log.DirSynced("d"), Seqs{r});
}

}  // namespace
}  // namespace flakyfs
