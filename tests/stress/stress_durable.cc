// The model checker under power cuts (stress_durable.h).
#include "stress_durable.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

namespace detourfs::stress {
namespace {

namespace fs = std::filesystem;

// One entry of a tree as the check compares it.
struct Entry {
  char type = '?';  // f, d, l (symlink), c (whiteout or other device), o (other)
  unsigned mode = 0;
  ino_t ino = 0;      // the reference's number (manifest entries only)
  uint64_t hash = 0;  // contents, or a symlink's target
};

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// Every path under `root` (not `root` itself), relative, parents before
// their children. Symlinks are not followed.
std::vector<std::string> Walk(const std::string& root, std::string* error) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    out.push_back(it->path().string().substr(root.size() + 1));  // never through a symlink
  }
  if (ec) *error = "cannot walk " + root + ": " + ec.message();
  return out;
}

bool ReadEntry(const std::string& path, Entry* e, std::string* error) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    *error = Errno("lstat", path);
    return false;
  }
  e->ino = st.st_ino;
  e->mode = st.st_mode & 07777;
  if (S_ISREG(st.st_mode)) {
    e->type = 'f';
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      *error = Errno("open", path);
      return false;
    }
    std::stringstream data;
    data << in.rdbuf();
    const std::string s = data.str();
    e->hash = XXH3_64bits(s.data(), s.size());
  } else if (S_ISDIR(st.st_mode)) {
    e->type = 'd';
  } else if (S_ISLNK(st.st_mode)) {
    e->type = 'l';
    std::error_code ec;
    const std::string target = fs::read_symlink(path, ec).string();
    e->hash = XXH3_64bits(target.data(), target.size());
  } else {
    e->type = S_ISCHR(st.st_mode) ? 'c' : 'o';
  }
  return true;
}

// fsync of one file or directory; "" or why not.
std::string Fsync(const std::string& path, bool dir) {
  const int fd = ::open(path.c_str(), (dir ? O_DIRECTORY : 0) | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  const int rc = ::fsync(fd);
  std::string error = rc != 0 ? Errno("fsync", path) : "";
  ::close(fd);
  return error;
}

// `rel` with the symlinks in it resolved under `root`: the longest prefix
// that exists resolved, the rest appended; "" if it leads out of `root`.
// (An operation on "a/l/f" where l -> "b" changes "a/b/f".)
std::string Resolved(const std::string& root, const std::string& rel) {
  std::string prefix = rel;
  std::string rest;
  while (true) {
    char* real = ::realpath((root + "/" + prefix).c_str(), nullptr);
    if (real != nullptr) {
      std::string r(real);
      ::free(real);  // NOLINT: realpath's allocation
      std::string out;
      if (r == root) {
        out = rest;
      } else if (r.compare(0, root.size() + 1, root + "/") == 0) {
        out = r.substr(root.size() + 1) + (rest.empty() ? "" : "/" + rest);
      } else {
        return "";
      }
      return out;
    }
    const size_t slash = prefix.rfind('/');
    const std::string leaf = slash == std::string::npos ? prefix : prefix.substr(slash + 1);
    rest = rest.empty() ? leaf : leaf + "/" + rest;
    if (slash == std::string::npos) return rest;
    prefix.resize(slash);
  }
}

bool IsUnder(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

}  // namespace

std::unique_ptr<DurableLog> DurableLog::Open(const std::string& dir, const std::string& tag,
                                             std::string* error) {
  const std::string path = dir + "/" + tag + ".touched";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = Errno("cannot make", path);
    return nullptr;
  }
  return std::unique_ptr<DurableLog>(new DurableLog(dir, tag, fd));
}

DurableLog::~DurableLog() { ::close(touched_fd_); }

std::string DurableLog::Touching(const Operation& op, const Side& ref) {
  std::string text;
  auto inode = [&](const struct stat& st) { text += "i " + std::to_string(st.st_ino) + "\n"; };
  std::vector<std::string> paths{op.path};
  switch (op.kind) {
    case Kind::kRename:
    case Kind::kLink:
    case Kind::kRenameNoreplace:
    case Kind::kRenameExchange:
    case Kind::kRenameWhiteout:
      paths.push_back(op.path2);
      break;
    default:
      break;  // a symlink's path2 is its target
  }
  for (const std::string& p : paths) {
    if (p.empty()) continue;
    // The name as given, with its directory's symlinks resolved, and with
    // its own (a write through a symlink changes its target).
    const size_t slash = p.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : p.substr(0, slash);
    const std::string leaf = slash == std::string::npos ? p : p.substr(slash + 1);
    const std::string in_dir = dir.empty() ? "" : Resolved(ref.root, dir);
    for (const std::string& name :
         {p, in_dir.empty() ? leaf : in_dir + "/" + leaf, Resolved(ref.root, p)}) {
      if (!name.empty()) text += "p " + name + "\n";
    }
    struct stat st {};
    if (::lstat((ref.root + "/" + p).c_str(), &st) == 0) inode(st);
    if (::stat((ref.root + "/" + p).c_str(), &st) == 0) inode(st);
  }
  if (op.slot >= 0 && op.slot < Side::kSlots && ref.fds[op.slot] >= 0) {
    struct stat st {};
    if (::fstat(ref.fds[op.slot], &st) == 0) inode(st);
  }
  // One write: the record is whole in the page cache before the operation
  // starts, whenever the worker is killed.
  if (::write(touched_fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Errno("write", dir_ + "/" + tag_ + ".touched");
  }
  return "";
}

std::string SyncTree(const std::string& root) {
  std::string error;
  std::vector<std::string> under = Walk(root, &error);
  if (!error.empty()) return error;
  // Deepest first: a directory after what is in it.
  for (auto it = under.rbegin(); it != under.rend(); ++it) {
    const std::string path = root + "/" + *it;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return Errno("lstat", path);
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) continue;  // its directory holds it
    error = Fsync(path, S_ISDIR(st.st_mode));
    if (!error.empty()) return error;
  }
  for (const std::string& dir : {root, fs::path(root).parent_path().string()}) {
    error = Fsync(dir, true);
    if (!error.empty()) return error;
  }
  return "";
}

std::string DurableLog::MakeDurable(const std::string& test_root, const std::string& ref_root) {
  std::string error = SyncTree(test_root);
  if (!error.empty()) return error;
  // The reference's tree is now the durable state.
  std::vector<std::string> ref = Walk(ref_root, &error);
  if (!error.empty()) return error;
  std::string text = "sync " + std::to_string(++syncs_) + "\n";
  for (const std::string& rel : ref) {
    Entry e;
    if (!ReadEntry(ref_root + "/" + rel, &e, &error)) return error;
    char line[96];
    std::snprintf(line, sizeof line, "%c %o %lu %016llx ", e.type, e.mode,
                  static_cast<unsigned long>(e.ino),         // NOLINT
                  static_cast<unsigned long long>(e.hash));  // NOLINT
    text += line + rel + "\n";
  }
  const std::string manifest = dir_ + "/" + tag_ + ".manifest";
  {
    std::ofstream out(manifest + ".new", std::ios::trunc);
    out << text;
    if (!out.flush()) return "cannot write " + manifest + ".new";
  }
  if (::rename((manifest + ".new").c_str(), manifest.c_str()) != 0) {
    return Errno("rename to", manifest);
  }
  // What the operations before touched is durable now (a kill before this
  // only leaves records that check less).
  if (::ftruncate(touched_fd_, 0) != 0) return Errno("truncate", dir_ + "/" + tag_ + ".touched");
  return "";
}

std::string CheckDurable(const std::string& test_root, const std::string& dir,
                         const std::string& tag, size_t* checked) {
  *checked = 0;
  std::ifstream manifest_in(dir + "/" + tag + ".manifest");
  if (!manifest_in) return "";  // never made durable
  std::map<std::string, Entry> durable;
  std::string line;
  std::getline(manifest_in, line);  // "sync N"
  while (std::getline(manifest_in, line)) {
    Entry e;
    unsigned long ino = 0;        // NOLINT
    unsigned long long hash = 0;  // NOLINT
    int used = 0;
    if (std::sscanf(line.c_str(), "%c %o %lu %llx %n", &e.type, &e.mode, &ino, &hash, &used) < 4 ||
        used == 0) {
      return "unreadable manifest line: " + line + "\n";
    }
    e.ino = ino;
    e.hash = hash;
    durable[line.substr(static_cast<size_t>(used))] = e;
  }
  std::vector<std::string> touched;
  std::set<ino_t> touched_inodes;
  std::ifstream touched_in(dir + "/" + tag + ".touched");
  while (std::getline(touched_in, line)) {
    if (line.rfind("p ", 0) == 0) touched.push_back(line.substr(2));
    if (line.rfind("i ", 0) == 0) touched_inodes.insert(std::stoull(line.substr(2)));
  }
  // Whether an operation after the durable point may have changed `rel`:
  // it named it, something above it, or something in it.
  auto changed_since = [&](const std::string& rel) {
    for (const std::string& t : touched) {
      if (t == rel || IsUnder(rel, t) || IsUnder(t, rel)) return true;
    }
    return false;
  };
  std::string report;
  std::string error;
  std::vector<std::string> now = Walk(test_root, &error);
  if (!error.empty()) return error + "\n";
  std::map<std::string, Entry> there;
  for (const std::string& rel : now) {
    Entry e;
    if (!ReadEntry(test_root + "/" + rel, &e, &error)) {
      report += "UNREADABLE " + rel + ": " + error + "\n";
      continue;
    }
    there[rel] = e;
  }
  for (const auto& [rel, want] : durable) {
    if (changed_since(rel) || touched_inodes.count(want.ino) != 0) continue;
    ++*checked;
    auto it = there.find(rel);
    if (it == there.end()) {
      report += "LOST " + rel + ": made durable, gone after the cut\n";
      continue;
    }
    const Entry& got = it->second;
    const bool mode_counts = want.type == 'f' || want.type == 'd';
    if (got.type != want.type || got.hash != want.hash || (mode_counts && got.mode != want.mode)) {
      char what[160];
      std::snprintf(what, sizeof what, "type %c mode %o, now type %c mode %o%s", want.type,
                    want.mode, got.type, got.mode, got.hash != want.hash ? ", other contents" : "");
      report += "CHANGED " + rel + ": made durable as " + what + "\n";
    }
  }
  for (const auto& [rel, got] : there) {
    if (durable.count(rel) != 0 || changed_since(rel)) continue;
    ++*checked;
    report += "BACK " + rel + ": absent when made durable, there after the cut\n";
  }
  return report;
}

}  // namespace detourfs::stress
