// flakyfs's power cut against an independent reference: seeded random
// namespace changes, writes, attribute changes and fsyncs through the mount,
// then a cut, then the whole tree compared with what the reference says is
// durable. The reference replays the durable changes forward from the last
// durable tree (README.md's rules, read naively), where flakyfs undoes the
// others on the real tree, so the two share the rules and nothing else.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "lib/files.h"
#include "lib/flaky_mount.h"
#include "lib/mounted_fs.h"

namespace detourfs::testing {
namespace {

constexpr int kRoot = 0;
constexpr const char* kXattr = "trusted.k";

struct Node {
  bool dir = false;
  std::string content;
  mode_t mode = 0;
  std::string xattr;                   // "" = none
  std::map<std::string, int> entries;  // directories: name -> node id
};
using Tree = std::map<int, Node>;

// One namespace change, with what makes it durable (README.md): its parent
// directories fsynced after it, and every earlier change sharing a key durable.
struct Change {
  enum class Kind { kCreate, kRemove, kRename, kExchange, kLink };
  Kind kind = Kind::kCreate;
  int dir = -1, new_dir = -1;
  std::string name, new_name;
  int obj = -1;
  Node created;  // kCreate: the node as made
  std::set<int> keys, dirs;
  size_t time = 0;
};

class Reference {
 public:
  Reference() { base_[kRoot].dir = true, base_[kRoot].mode = 0755, live_ = base_; }

  const Tree& live() const { return live_; }
  int NewId() { return next_id_++; }
  size_t Tick() { return ++time_; }

  void Record(Change c) {
    c.time = Tick();
    Apply(c, &live_);
    log_.push_back(std::move(c));
  }
  void FileSynced(int id, bool datasync) {
    content_[id] = live_.at(id).content;
    if (!datasync) attrs_[id] = live_.at(id);
  }
  void DirSynced(int id) { dir_syncs_.emplace_back(Tick(), id); }
  void SyncPoint() {
    base_ = live_;
    log_.clear();
    content_.clear();
    attrs_.clear();
    dir_syncs_.clear();
  }
  Node& Live(int id) { return live_.at(id); }

  // The tree a power cut must leave; becomes the new start.
  Tree Cut() {
    Tree t = base_;
    std::vector<bool> durable(log_.size());
    for (size_t i = 0; i < log_.size(); ++i) {
      bool ok = std::all_of(log_[i].dirs.begin(), log_[i].dirs.end(), [&](int d) {
        return std::any_of(dir_syncs_.begin(), dir_syncs_.end(),
                           [&](const auto& s) { return s.second == d && s.first > log_[i].time; });
      });
      for (size_t j = 0; j < i && ok; ++j) {
        for (int k : log_[j].keys) ok = ok && (durable[j] || log_[i].keys.count(k) == 0);
      }
      durable[i] = ok;
      if (ok) Apply(log_[i], &t);
    }
    for (auto& [id, node] : t) {
      if (node.dir) continue;
      auto base = base_.find(id);
      const bool in_base = base != base_.end();
      node.content = content_.count(id) ? content_.at(id) : in_base ? base->second.content : "";
      const Node& attrs = attrs_.count(id) ? attrs_.at(id)
                          : in_base        ? base->second
                                           : created_.at(id);
      node.mode = attrs.mode;
      node.xattr = attrs.xattr;
    }
    live_ = t;
    SyncPoint();
    return t;
  }

 private:
  void Apply(const Change& c, Tree* t) {
    auto& entries = (*t)[c.dir].entries;
    switch (c.kind) {
      case Change::Kind::kCreate:
        (*t)[c.obj] = c.created;
        created_[c.obj] = c.created;
        entries[c.name] = c.obj;
        break;
      case Change::Kind::kLink:
        entries[c.name] = c.obj;
        break;
      case Change::Kind::kRemove:
        entries.erase(c.name);
        break;
      case Change::Kind::kRename:
        entries.erase(c.name);
        (*t)[c.new_dir].entries[c.new_name] = c.obj;
        break;
      case Change::Kind::kExchange:
        std::swap(entries[c.name], (*t)[c.new_dir].entries[c.new_name]);
        break;
    }
  }

  Tree base_, live_;
  std::map<int, Node> created_;
  std::vector<Change> log_;
  std::map<int, std::string> content_;
  std::map<int, Node> attrs_;
  std::vector<std::pair<size_t, int>> dir_syncs_;
  int next_id_ = 1;
  size_t time_ = 0;
};

// path -> "type mode links content xattr", and the sets of paths naming one inode.
struct Picture {
  std::map<std::string, std::string> entries;
  std::set<std::set<std::string>> links;
};

std::string Line(bool dir, mode_t mode, size_t links, const std::string& content,
                 const std::string& xattr) {
  char octal[8];
  std::snprintf(octal, sizeof(octal), "%o", mode);
  return (dir ? "dir " : "file ") + std::string(octal) + " " + (dir ? "" : std::to_string(links)) +
         " [" + content + "] [" + xattr + "]";
}

void Names(const Tree& t, int id, const std::string& path,
           std::map<int, std::set<std::string>>* names) {
  for (const auto& [name, child] : t.at(id).entries) {
    (*names)[child].insert(path + "/" + name);
    if (t.at(child).dir) Names(t, child, path + "/" + name, names);
  }
}

Picture PictureOf(const Tree& t) {
  Picture p;
  std::map<int, std::set<std::string>> names;
  Names(t, kRoot, "", &names);
  for (const auto& [id, paths] : names) {
    const Node& n = t.at(id);
    for (const std::string& path : paths) {
      p.entries[path] = Line(n.dir, n.mode, paths.size(), n.content, n.xattr);
    }
    if (!n.dir) p.links.insert(paths);
  }
  return p;
}

void Scan(const std::string& root, const std::string& path, Picture* p,
          std::map<ino_t, std::set<std::string>>* names) {
  for (const std::string& name : ListDir(root + path)) {
    const std::string sub = path + "/" + name;
    struct stat st = Lstat(root + sub);
    char x[64] = {};
    ssize_t n = ::getxattr((root + sub).c_str(), kXattr, x, sizeof(x));
    const std::string xattr = n > 0 ? std::string(x, static_cast<size_t>(n)) : "";
    const bool dir = S_ISDIR(st.st_mode);
    p->entries[sub] =
        Line(dir, st.st_mode & 07777, st.st_nlink, dir ? "" : ReadFile(root + sub), xattr);
    if (dir) {
      Scan(root, sub, p, names);
    } else {
      (*names)[st.st_ino].insert(sub);
    }
  }
}

Picture PictureOf(const std::string& mount) {
  Picture p;
  std::map<ino_t, std::set<std::string>> names;
  Scan(mount, "", &p, &names);
  for (auto& [ino, set] : names) p.links.insert(set);
  return p;
}

// Drives random operations on the mount and the reference together.
class Workload {
 public:
  Workload(std::string mnt, uint64_t seed) : mnt_(std::move(mnt)), rng_(seed) {}

  Reference& ref() { return ref_; }
  const std::vector<std::string>& trace() const { return trace_; }
  void Mark(const std::string& line) { trace_.push_back(line); }

  void Step() {
    Collect();
    switch (Pick(12)) {
      case 0:
      case 1:
        return Create(false);
      case 2:
        return Create(true);
      case 3:
      case 4:
        return Write();
      case 5:
        return SyncFile();
      case 6:
      case 7:
        return SyncDir();
      case 8:
        return Remove();
      case 9:
        return Rename();
      case 10:
        return Link();
      default:
        return Attrs();
    }
  }

 private:
  struct Entry {
    int dir;
    std::string name;
    int id;
    std::string path;
  };

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  std::string M(const std::string& path) const { return mnt_ + path; }
  const Node& N(int id) const { return ref_.live().at(id); }

  // Every name in the live tree, and every directory with its path.
  void Collect() {
    entries_.clear();
    dirs_ = {{kRoot, ""}};
    for (size_t i = 0; i < dirs_.size(); ++i) {
      auto [dir, path] = dirs_[i];
      for (const auto& [name, id] : N(dir).entries) {
        entries_.push_back({dir, name, id, path + "/" + name});
        if (N(id).dir) dirs_.emplace_back(id, path + "/" + name);
      }
    }
  }
  bool IsAncestor(int a, int b) const {  // a is b or above it
    if (a == b) return true;
    for (const auto& [name, child] : N(a).entries) {
      if (N(child).dir && IsAncestor(child, b)) return true;
    }
    return false;
  }
  std::string DirPath(int id) const {
    for (const auto& [d, p] : dirs_) {
      if (d == id) return p;
    }
    return "?";
  }
  const Entry* RandomEntry(bool want_dir) {
    std::vector<const Entry*> pool;
    for (const Entry& e : entries_) {
      if (N(e.id).dir == want_dir) pool.push_back(&e);
    }
    return pool.empty() ? nullptr : pool[static_cast<size_t>(Pick(static_cast<int>(pool.size())))];
  }
  std::pair<int, std::string> RandomSlot() {
    auto [dir, path] = dirs_[static_cast<size_t>(Pick(static_cast<int>(dirs_.size())))];
    return {dir, "n" + std::to_string(Pick(5))};
  }
  std::string Data() { return std::string(static_cast<size_t>(1 + Pick(6)), "abcdefgh"[Pick(8)]); }
  void Trace(const std::string& what) { trace_.push_back(what); }

  void Create(bool dir) {
    auto [parent, name] = RandomSlot();
    if (N(parent).entries.count(name)) return;
    const std::string path = DirPath(parent) + "/" + name;
    Change c;
    c.kind = Change::Kind::kCreate;
    c.dir = parent;
    c.name = name;
    c.obj = ref_.NewId();
    c.created.dir = dir;
    c.created.mode = dir ? 0755 : 0644;
    c.keys = {parent, c.obj};
    c.dirs = {parent};
    if (dir) {
      ASSERT_EQ(::mkdir(M(path).c_str(), 0755), 0) << path;
    } else {
      int fd = ::open(M(path).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      ASSERT_GE(fd, 0) << path;
      ::close(fd);
    }
    Trace((dir ? "mkdir " : "create ") + path);
    ref_.Record(std::move(c));
  }

  void Write() {
    const Entry* e = RandomEntry(false);
    if (e == nullptr) return;
    Node& n = ref_.Live(e->id);
    const std::string data = Data();
    const bool trunc = Pick(3) == 0;
    const size_t off =
        trunc ? 0 : static_cast<size_t>(Pick(static_cast<int>(n.content.size()) + 1));
    int fd = ::open(M(e->path).c_str(), O_WRONLY | (trunc ? O_TRUNC : 0));
    ASSERT_GE(fd, 0) << e->path;
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)),
              static_cast<ssize_t>(data.size()));
    ::close(fd);
    if (trunc) n.content.clear();
    n.content.resize(std::max(n.content.size(), off + data.size()));
    n.content.replace(off, data.size(), data);
    Trace("write " + e->path + (trunc ? " trunc " : " @") + std::to_string(off) + " " + data);
  }

  void SyncFile() {
    const Entry* e = RandomEntry(false);
    if (e == nullptr) return;
    const bool datasync = Pick(2) == 0;
    int fd = ::open(M(e->path).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(datasync ? ::fdatasync(fd) : ::fsync(fd), 0);
    ::close(fd);
    ref_.FileSynced(e->id, datasync);
    Trace((datasync ? "fdatasync " : "fsync ") + e->path);
  }

  void SyncDir() {
    // The root's fsync is a sync point: rarely, or nothing would stay unsynced.
    auto [dir, path] = dirs_[static_cast<size_t>(Pick(static_cast<int>(dirs_.size())))];
    if (dir == kRoot && Pick(8) != 0) return;
    int fd = ::open(M(path.empty() ? "/" : path).c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fsync(fd), 0);
    ::close(fd);
    if (dir == kRoot) {
      ref_.SyncPoint();
    } else {
      ref_.DirSynced(dir);
    }
    Trace("fsync dir " + (path.empty() ? "/" : path));
  }

  void Remove() {
    const Entry* e = RandomEntry(Pick(3) == 0);
    if (e == nullptr) return;
    const bool dir = N(e->id).dir;
    if (dir && !N(e->id).entries.empty()) return;
    ASSERT_EQ(dir ? ::rmdir(M(e->path).c_str()) : ::unlink(M(e->path).c_str()), 0)
        << e->path << ": " << std::strerror(errno);
    if (dir) ref_.DirSynced(e->id);  // removed: nothing waits for its fsync any more
    Change c;
    c.kind = Change::Kind::kRemove;
    c.dir = e->dir;
    c.name = e->name;
    c.obj = e->id;
    c.keys = {e->dir, e->id};
    c.dirs = {e->dir};
    Trace((dir ? "rmdir " : "unlink ") + e->path);
    ref_.Record(std::move(c));
  }

  void Rename() {
    const Entry* e = RandomEntry(Pick(3) == 0);
    if (e == nullptr) return;
    auto [to_dir, to_name] = RandomSlot();
    const bool is_dir = N(e->id).dir;
    if (is_dir && IsAncestor(e->id, to_dir)) return;
    auto target = N(to_dir).entries.find(to_name);
    const bool exchange = target != N(to_dir).entries.end() && Pick(3) == 0;
    const std::string to = DirPath(to_dir) + "/" + to_name;
    Change c;
    c.kind = exchange ? Change::Kind::kExchange : Change::Kind::kRename;
    c.dir = e->dir;
    c.name = e->name;
    c.new_dir = to_dir;
    c.new_name = to_name;
    c.obj = e->id;
    c.keys = {e->dir, to_dir, e->id};
    c.dirs = {e->dir, to_dir};
    if (target != N(to_dir).entries.end()) {
      const int other = target->second;
      if (other == e->id) return;  // a name onto itself, or onto another link
      if (exchange) {
        if (N(other).dir && IsAncestor(other, e->dir)) return;
      } else if (N(other).dir != is_dir || (is_dir && !N(other).entries.empty())) {
        return;
      }
      c.keys.insert(other);
      if (!exchange && is_dir) ref_.DirSynced(other);  // replaced, so removed
    }
    ASSERT_EQ(::renameat2(AT_FDCWD, M(e->path).c_str(), AT_FDCWD, M(to).c_str(),
                          exchange ? RENAME_EXCHANGE : 0),
              0)
        << e->path << " -> " << to;
    Trace((exchange ? "exchange " : "rename ") + e->path + " " + to);
    ref_.Record(std::move(c));
  }

  void Link() {
    const Entry* e = RandomEntry(false);
    if (e == nullptr) return;
    auto [to_dir, to_name] = RandomSlot();
    if (N(to_dir).entries.count(to_name)) return;
    const std::string to = DirPath(to_dir) + "/" + to_name;
    ASSERT_EQ(::link(M(e->path).c_str(), M(to).c_str()), 0);
    Change c;
    c.kind = Change::Kind::kLink;
    c.dir = to_dir;
    c.name = to_name;
    c.obj = e->id;
    c.keys = {to_dir, e->id};
    c.dirs = {to_dir};
    Trace("link " + e->path + " " + to);
    ref_.Record(std::move(c));
  }

  void Attrs() {
    const Entry* e = RandomEntry(false);
    if (e == nullptr) return;
    Node& n = ref_.Live(e->id);
    if (Pick(2) == 0) {
      n.mode = Pick(2) == 0 ? 0600 : 0640;
      ASSERT_EQ(::chmod(M(e->path).c_str(), n.mode), 0);
      Trace("chmod " + e->path);
    } else {
      n.xattr = Data();
      ASSERT_EQ(::setxattr(M(e->path).c_str(), kXattr, n.xattr.data(), n.xattr.size(), 0), 0);
      Trace("setxattr " + e->path + " " + n.xattr);
    }
  }

  std::string mnt_;
  std::mt19937_64 rng_;
  Reference ref_;
  std::vector<Entry> entries_;
  std::vector<std::pair<int, std::string>> dirs_;
  std::vector<std::string> trace_;
};

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += "  " + l + "\n";
  return out;
}

TEST(PowerCutRandomTest, TreeAfterEachCutIsWhatTheReferenceSaysIsDurable) {
  char tmpl[] = "/tmp/flakyfs-cut-random.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  ASSERT_EQ(::mkdir((root + "/source").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root + "/mnt").c_str(), 0755), 0);
  struct Cleanup {
    std::string root;
    ~Cleanup() { Shell("rm -rf '" + root + "'"); }
  } cleanup{root};
  ::umask(022);  // the reference's modes assume it
  const char* env_seed = ::getenv("FLAKYFS_CUT_SEED");
  const uint64_t first_seed = env_seed != nullptr ? std::stoull(env_seed) : std::random_device()();
  for (uint64_t seed = first_seed; seed < first_seed + 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " (FLAKYFS_CUT_SEED replays it)");
    Shell("rm -rf '" + root + "/source' && mkdir '" + root + "/source'");
    FlakyConfig config;
    config.power_cut_model = true;
    std::string error;
    auto flaky = FlakyMount::Start(root + "/source", root + "/mnt", config, &error);
    ASSERT_NE(flaky, nullptr) << error;
    Workload w(root + "/mnt", seed);
    for (int round = 0; round < 8; ++round) {
      for (int i = 0; i < 60; ++i) {
        w.Step();
        if (::testing::Test::HasFatalFailure()) {
          FAIL() << "round " << round << ":\n" << Join(w.trace());
        }
        // While it tracks, the mount still shows exactly what was done.
        if (i % 10 == 9) {
          const Picture want = PictureOf(w.ref().live());
          const Picture got = PictureOf(root + "/mnt");
          ASSERT_EQ(got.entries, want.entries) << "round " << round << ":\n" << Join(w.trace());
        }
      }
      nlohmann::json summary;
      ASSERT_EQ(flaky->PowerCut(&summary), "") << Join(w.trace());
      const Picture want = PictureOf(w.ref().Cut());
      const Picture got = PictureOf(root + "/mnt");
      ASSERT_EQ(got.entries, want.entries) << "round " << round << ":\n" << Join(w.trace());
      ASSERT_EQ(got.links, want.links) << "round " << round << ":\n" << Join(w.trace());
      w.Mark("--- cut");
    }
    ASSERT_EQ(flaky->Stop(), 0);
  }
}

}  // namespace
}  // namespace detourfs::testing
