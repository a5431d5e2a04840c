// The home-like namespace of the model checker (stress_home.h).
#include "stress_home.h"

#include <dirent.h>
#include <sys/stat.h>

#include <array>
#include <cstdlib>

#include "stress_fs.h"

namespace detourfs::stress {
namespace {

// Relative weights of the kinds, in Kind order: namespace changes across
// rules weigh more than in the flat namespace.
constexpr std::array<int, static_cast<size_t>(Kind::kCount)> kHomeWeights = {
    6,  // create
    8,  // write
    5,  // read
    2,  // truncate
    7,  // rename
    4,  // link
    4,  // unlink
    4,  // mkdir
    3,  // rmdir
    2,  // symlink
    1,  // chmod
    1,  // utimens
    1,  // fsync
    4,  // stat
    2,  // list
    2,  // hold_open
    3,  // hold_write
    2,  // hold_read
    1,  // hold_close
    2,  // rename_noreplace
    3,  // rename_exchange
    2,  // rename_whiteout
    5,  // mkdir_p
    2,  // rm_rf
};

constexpr std::array<uint32_t, 5> kModes = {0644, 0600, 0755, 0444, 0700};

// Symlink targets, relative to the link's directory: within the tree, some
// dangling, some through routed directories.
constexpr std::array<const char*, 10> kTargets = {"f0",
                                                  "node_modules",
                                                  "../f0",
                                                  "build",
                                                  "dist/f0",
                                                  "pkg/f1",
                                                  "..",
                                                  "../proj0/f1",
                                                  "node_modules/pkg",
                                                  "../node_modules/f2"};

// Name pairs a rename swaps between, either way, in one directory.
struct Pair {
  const char* a;
  const char* b;
};
constexpr std::array<Pair, 9> kPairs = {{{"node_modules", "node_modules.old"},
                                         {"node_modules", "node_modules.old"},
                                         {"node_modules", "node_modules.old"},
                                         {"build.sh", "build"},
                                         {"build.sh", "build"},
                                         {"f0", "build"},
                                         {"build", "build.old"},
                                         {"dist", "dist.old"},
                                         {"dist", "node_modules"}}};
constexpr std::array<Pair, 4> kTopPairs = {
    {{"proj0", "proj1"}, {"proj0", "proj.old"}, {"proj1", "proj.old"}, {".cache", "cache.old"}}};

}  // namespace

const char* HomeGenerator::Pick(const std::vector<Weighted>& choices) {
  int total = 0;
  for (const Weighted& c : choices) total += c.weight;
  int pick = static_cast<int>(Below(static_cast<uint64_t>(total)));
  for (const Weighted& c : choices) {
    if (pick < c.weight) return c.name;
    pick -= c.weight;
  }
  return choices.back().name;
}

std::string HomeGenerator::DirName(bool top) {
  static const std::vector<Weighted> kTop = {{"proj0", 4},       {"proj1", 4}, {"proj.old", 1},
                                             {".cache", 2},      {"app", 2},   {"build", 1},
                                             {"node_modules", 1}};
  static const std::vector<Weighted> kBelow = {
      {"node_modules", 5}, {"dist", 2},   {"build", 2},           {"src", 2},
      {"pkg", 2},          {".cache", 1}, {"node_modules.old", 1}};
  return Pick(top ? kTop : kBelow);
}

std::string HomeGenerator::Dirs(uint64_t depth, bool top) {
  std::string path;
  for (uint64_t i = 0; i < depth; ++i) path += DirName(top && i == 0) + "/";
  return path;
}

uint64_t HomeGenerator::Depth() {
  static const std::vector<Weighted> kDepths = {{"0", 2}, {"1", 3}, {"2", 3}, {"3", 2}};
  return static_cast<uint64_t>(Pick(kDepths)[0] - '0');
}

std::string HomeGenerator::Parent() {
  // Mostly directories the skeleton makes (so operations find what they
  // name), each side of every rule; sometimes any path up to three deep.
  static const std::vector<Weighted> kParents = {
      {"", 4},
      {"proj0/", 4},
      {"proj1/", 3},
      {"proj.old/", 1},
      {"proj0/node_modules/", 4},
      {"proj1/node_modules/", 3},
      {"proj0/node_modules/pkg/", 2},
      {"proj0/node_modules/node_modules/", 2},
      {"proj0/node_modules/pkg/dist/", 1},
      {"proj1/node_modules.old/", 1},
      {"proj.old/node_modules/", 1},
      {"proj0/dist/", 2},
      {"proj1/dist/", 2},
      {"proj1/dist/node_modules/", 1},
      {"proj0/build/", 2},
      {"proj0/build/src/", 1},
      {"proj1/build/", 1},
      {"proj0/src/", 2},
      {".cache/", 2},
      {".cache/pkg/", 1},
      {"node_modules/", 1},
      {"build/", 1},
  };
  if (Below(5) == 0) return Dirs(Depth(), true);
  return Pick(kParents);
}

std::string HomeGenerator::Leaf(bool top) {
  static const std::vector<Weighted> kTop = {{"f0", 2},       {"f1", 2},    {"f2", 1},  {"f3", 1},
                                             {"build.sh", 2}, {"build", 2}, {"dist", 1}};
  static const std::vector<Weighted> kBelow = {
      {"f0", 3},   {"f1", 3},           {"f2", 2},
      {"f3", 2},   {"build.sh", 2},     {"build", 3},
      {"dist", 2}, {"node_modules", 3}, {"node_modules.old", 1},
      {"src", 1},  {"pkg", 1},          {"build.old", 1}};
  return Pick(top ? kTop : kBelow);
}

std::string HomeGenerator::AnyPath() {
  std::string parent = Parent();
  return parent + Leaf(parent.empty());
}

std::string HomeGenerator::DirPath() {
  std::string parent = Parent();
  return parent + DirName(parent.empty());
}

void HomeGenerator::ReadReference() {
  existing_.clear();
  std::vector<std::pair<std::string, int>> todo = {{"", 0}};  // directory, depth
  while (!todo.empty()) {
    auto [dir, depth] = todo.back();
    todo.pop_back();
    int err = 0;
    for (const std::string& name : Names(ref_root_ + "/" + dir, &err)) {
      const std::string rel = dir.empty() ? name : dir + "/" + name;
      struct stat st {};
      if (::lstat((ref_root_ + "/" + rel).c_str(), &st) != 0) continue;
      existing_.push_back(Existing{rel, S_ISDIR(st.st_mode)});
      if (S_ISDIR(st.st_mode) && depth < 6) todo.emplace_back(rel, depth + 1);
    }
  }
}

std::string HomeGenerator::MaybeExisting(uint64_t percent, Want want,
                                         const std::string& otherwise) {
  if (Below(100) >= percent) return otherwise;
  if (!read_ && !ref_root_.empty()) ReadReference();
  read_ = true;
  std::vector<const std::string*> fit;
  for (const Existing& e : existing_) {
    if (want == Want::kAny || (want == Want::kDir) == e.dir) fit.push_back(&e.rel);
  }
  return fit.empty() ? otherwise : *fit[Below(fit.size())];
}

void HomeGenerator::RenamePaths(Operation* op) {
  const bool link = op->kind == Kind::kLink;
  uint64_t how = Below(20);
  if (how < (link ? 2 : 6)) {  // a pair, in one directory
    std::string parent = Parent();
    Pair pair = parent.empty() && Below(2) == 0 ? kTopPairs[Below(kTopPairs.size())]
                                                : kPairs[Below(kPairs.size())];
    bool flip = Below(2) == 0;
    op->path = parent + (flip ? pair.b : pair.a);
    op->path2 = parent + (flip ? pair.a : pair.b);
  } else if (how < 11) {  // something there to a name beside it
    op->path = MaybeExisting(80, link ? Want::kNonDir : Want::kAny, AnyPath());
    size_t slash = op->path.rfind('/');
    std::string parent = slash == std::string::npos ? "" : op->path.substr(0, slash + 1);
    op->path2 = parent + Leaf(parent.empty());
  } else {  // something there to anywhere, or onto something there
    op->path = MaybeExisting(80, link ? Want::kNonDir : Want::kAny, AnyPath());
    op->path2 = MaybeExisting(op->kind == Kind::kRenameExchange ? 70 : 25, Want::kAny, AnyPath());
  }
}

Operation HomeGenerator::Next() {
  int total = 0;
  for (int w : kHomeWeights) total += w;
  Operation op;
  for (;;) {
    int pick = static_cast<int>(Below(static_cast<uint64_t>(total)));
    size_t k = 0;
    while (pick >= kHomeWeights[k]) pick -= kHomeWeights[k++];
    op.kind = static_cast<Kind>(k);
    bool held = op.kind == Kind::kHoldOpen || op.kind == Kind::kHoldWrite ||
                op.kind == Kind::kHoldRead || op.kind == Kind::kHoldClose;
    if (!for_prefill_ ||
        !(held || op.kind == Kind::kRenameWhiteout || op.kind == Kind::kRemoveTree)) {
      break;
    }
  }
  read_ = false;  // the reference is read again when a path is picked from it
  op.path = MaybeExisting(60, Want::kNonDir, AnyPath());
  op.path2 = AnyPath();
  op.mode = kModes[Below(kModes.size())];
  op.slot = static_cast<int>(Below(Side::kSlots));
  op.data_seed = static_cast<uint32_t>(Below(1U << 30U));
  op.offset = Below(4) == 0 ? 0 : Below(64 * 1024);
  op.length = Below(4) == 0 ? Below(64) : Below(16 * 1024);
  op.seconds = 1000000000 + static_cast<int64_t>(Below(100000000));
  switch (op.kind) {
    case Kind::kCreate:
      op.offset = Below(2);  // O_EXCL
      op.path = MaybeExisting(20, Want::kNonDir, AnyPath());
      break;
    case Kind::kMkdir:
      op.mode = 0755;
      op.path = DirPath();
      break;
    case Kind::kMkdirP:  // a skeleton directory again, or a routed one under a new parent
      op.mode = 0755;
      op.path = Below(2) == 0 ? Parent() : DirPath() + "/" + Dirs(1 + Below(2), false);
      if (op.path.empty()) op.path = DirName(true);
      if (op.path.back() == '/') op.path.pop_back();
      break;
    case Kind::kRmdir:
    case Kind::kList:
      op.path = MaybeExisting(50, Want::kDir, DirPath());
      break;
    case Kind::kRemoveTree:  // often a whole project
      op.path = Below(4) == 0 ? DirName(true) : MaybeExisting(50, Want::kDir, DirPath());
      break;
    case Kind::kRename:
    case Kind::kRenameNoreplace:
    case Kind::kRenameExchange:
    case Kind::kRenameWhiteout:
    case Kind::kLink:
      RenamePaths(&op);
      break;
    case Kind::kSymlink:
      op.path = AnyPath();
      op.path2 = kTargets[Below(kTargets.size())];
      break;
    default:
      break;
  }
  return op;
}

std::vector<Operation> HomeSkeleton() {
  std::vector<Operation> ops;
  uint32_t data = 7;
  auto op = [&](Kind kind, const std::string& path, const std::string& path2 = "") {
    Operation o;
    o.kind = kind;
    o.path = path;
    o.path2 = path2;
    o.mode = kind == Kind::kMkdirP ? 0755 : 0644;
    ops.push_back(o);
  };
  auto file = [&](const std::string& path) {
    op(Kind::kCreate, path);
    Operation w;
    w.kind = Kind::kWrite;
    w.path = path;
    w.data_seed = ++data;
    w.offset = data % 3 == 0 ? 0 : 4096 * (data % 5);
    w.length = 100 + 997 * (data % 13);
    ops.push_back(w);
  };
  // Unrouted project content, and files whose names collide with rules.
  op(Kind::kMkdirP, "proj0/src");
  file("proj0/src/f0");
  file("proj0/src/f1");
  file("proj0/build.sh");
  file("proj0/f0");
  // A routed memory subtree, nested node_modules, a dist inside it (not
  // re-routed), a symlink in it.
  op(Kind::kMkdirP, "proj0/node_modules/pkg/dist");
  file("proj0/node_modules/pkg/f0");
  file("proj0/node_modules/pkg/dist/f1");
  op(Kind::kMkdirP, "proj0/node_modules/node_modules/pkg");
  file("proj0/node_modules/node_modules/pkg/f0");
  op(Kind::kSymlink, "proj0/node_modules/.bin", "pkg/f0");
  // Routed disk subtrees.
  op(Kind::kMkdirP, "proj0/dist");
  file("proj0/dist/f0");
  op(Kind::kMkdirP, "proj0/build/src");
  file("proj0/build/f0");
  file("proj0/build/src/f1");
  // A second project: node_modules, a node_modules inside a routed dist, a
  // file named build (not routed: the rule is for directories), an old
  // node_modules to rename back.
  op(Kind::kMkdirP, "proj1/node_modules");
  file("proj1/node_modules/f0");
  op(Kind::kMkdirP, "proj1/dist/node_modules");
  file("proj1/dist/node_modules/f0");
  file("proj1/build");
  file("proj1/f0");
  op(Kind::kMkdirP, "proj1/node_modules.old/pkg");
  file("proj1/node_modules.old/pkg/f0");
  // The never-persisted cache, and the top level.
  op(Kind::kMkdirP, ".cache/pkg");
  file(".cache/pkg/f0");
  file("f0");
  file("build.sh");
  op(Kind::kMkdirP, "src");
  // Hard links: unrouted <-> memory, disk <-> memory, memory route <-> the
  // cache's route (one tier), within the disk route, unrouted <-> unrouted,
  // an unrouted file named build <-> disk.
  op(Kind::kLink, "proj0/src/f0", "proj0/node_modules/f1");
  op(Kind::kLink, "proj0/dist/f0", "proj1/node_modules/f2");
  op(Kind::kLink, ".cache/pkg/f0", "proj0/node_modules/pkg/f2");
  op(Kind::kLink, "proj0/build/f0", "proj0/build/src/f2");
  op(Kind::kLink, "f0", "proj1/f1");
  op(Kind::kLink, "proj1/build", "proj1/dist/f3");
  op(Kind::kLink, "proj0/node_modules/pkg/f0", "proj0/node_modules/node_modules/pkg/f1");
  // Symlinks at every level, some into routed directories.
  op(Kind::kSymlink, "proj0/nm", "node_modules");
  op(Kind::kSymlink, "proj1/f2", "../proj0/src/f0");
  op(Kind::kSymlink, "proj0/dist/latest", "f0");
  op(Kind::kSymlink, ".cache/home", "../proj0");
  op(Kind::kSymlink, "f1", "proj0/build.sh");
  return ops;
}

namespace {

enum class RouteLayer { kVolume, kMemory, kDisk };

// The layer the rules give a non-directory at `rel` (relative to a worker's
// root, itself one level below the mount's root).
RouteLayer FileRoute(const std::string& rel) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t slash = rel.find('/', start);
    if (slash == std::string::npos) slash = rel.size();
    if (slash > start) parts.push_back(rel.substr(start, slash - start));
    start = slash + 1;
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    if (parts[i] == "node_modules" || (i == 0 && parts[i] == ".cache")) return RouteLayer::kMemory;
    if (!last && (parts[i] == "dist" || parts[i] == "build")) return RouteLayer::kDisk;
  }
  return RouteLayer::kVolume;
}

// Whether `path` is, or holds, a non-directory with more than one name.
bool HoldsHardLinks(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return false;
  if (!S_ISDIR(st.st_mode)) return st.st_nlink > 1;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return false;
  bool found = false;
  while (dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (HoldsHardLinks(path + "/" + name)) {
      found = true;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

// `rel` with the symlinks in its directories resolved, as the kernel walks
// it (in the reference under `root`): a name reached through a symlink is
// routed where it really is. `rel` itself when that leaves `root`.
std::string ResolvedParents(const std::string& root, const std::string& rel) {
  const size_t slash = rel.rfind('/');
  if (slash == std::string::npos) return rel;
  char* real_root = ::realpath(root.c_str(), nullptr);
  char* real_dir = ::realpath((root + "/" + rel.substr(0, slash)).c_str(), nullptr);
  std::string out = rel;
  if (real_root != nullptr && real_dir != nullptr) {
    const std::string r = real_root;
    const std::string d = real_dir;
    if (d == r) {
      out = rel.substr(slash + 1);
    } else if (d.compare(0, r.size() + 1, r + "/") == 0) {
      out = d.substr(r.size() + 1) + rel.substr(slash);
    }
  }
  std::free(real_root);  // NOLINT: realpath's buffer
  std::free(real_dir);   // NOLINT
  return out;
}

}  // namespace

bool MayRefuseExdev(const Operation& op, const std::string& ref_root) {
  switch (op.kind) {
    case Kind::kLink:
      return FileRoute(ResolvedParents(ref_root, op.path)) !=
                 FileRoute(ResolvedParents(ref_root, op.path2)) ||
             HoldsHardLinks(ref_root + "/" + op.path);
    case Kind::kRenameExchange:
      if (HoldsHardLinks(ref_root + "/" + op.path2)) return true;
      [[fallthrough]];
    case Kind::kRename:
    case Kind::kRenameNoreplace:
    case Kind::kRenameWhiteout:
      return HoldsHardLinks(ref_root + "/" + op.path);
    default:
      return false;
  }
}

}  // namespace detourfs::stress
