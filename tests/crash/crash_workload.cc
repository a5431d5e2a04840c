// detourfs-crash-workload: the workload and the checker of the crash harness.
//
//   run   --dir DIR --ledger FILE [--seed N] [--files N]
//     Writes files into DIR until it fails (the daemon was killed) or --files
//     are done. Each new file is written, fsync'ed, and only then recorded in
//     the ledger ("ack PATH SIZE HASH"). Every fourth step instead replaces an
//     acknowledged file atomically (write a temporary, fsync, rename over,
//     fsync the directory), recording "pending" before the rename and "ack"
//     after the directory fsync. Once 32 are acknowledged, every eighth step
//     removes one (unlink, fsync the directory), recording "removing" before
//     and "removed" after. The ledger lives outside the mount.
//   check --dir DIR --ledger FILE
//     Every acknowledged path must hold its last acknowledged content, or the
//     content of a replacement that was pending after it, or be gone if its
//     removal had begun; a removed path must be gone. Prints each violation;
//     exit 1 if any.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string Content(std::mt19937_64& rng) {
  static constexpr std::array<size_t, 4> kSizes = {0, 100, 5000, 300000};
  size_t size = kSizes[rng() % kSizes.size()] + rng() % 4096;
  std::string data(size, '\0');
  for (char& c : data) c = static_cast<char>(rng() & 0xFFU);
  return data;
}

uint64_t Hash(const std::string& data) { return XXH64(data.data(), data.size(), 0); }

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Writes `data` to `path`, fsyncs it; false on any failure.
bool WriteDurably(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = WriteAll(fd, data) && ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

bool FsyncDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

void Record(FILE* ledger, const char* kind, const std::string& rel, const std::string& data) {
  std::fprintf(ledger, "%s %s %zu %016llx\n", kind, rel.c_str(), data.size(),
               static_cast<unsigned long long>(Hash(data)));  // NOLINT
  std::fflush(ledger);  // the workload may die next: the line must be in the kernel
}

int Run(const std::string& dir, const std::string& ledger_path, uint64_t seed, uint64_t files) {
  FILE* ledger = std::fopen(ledger_path.c_str(), "a");
  if (ledger == nullptr) {
    std::perror("ledger");
    return 2;
  }
  // The run's own directory, durable before any file in it is acknowledged.
  if ((::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) ||
      !FsyncDir(dir.substr(0, dir.find_last_of('/')))) {
    std::perror("workload directory");
    std::fclose(ledger);
    return 1;
  }
  std::mt19937_64 rng(seed);
  std::vector<std::string> acked;
  // Stops at the first failure, saying which step failed and why (after a
  // kill that is ENOTCONN; anything else explains a run that ended early).
  auto failed = [](const char* step, const std::string& path) {
    std::fprintf(stderr, "workload stops: %s %s: %s\n", step, path.c_str(), std::strerror(errno));
  };
  for (uint64_t i = 0; i < files; ++i) {
    std::string subdir = "d" + std::to_string(i % 8);
    if (::mkdir((dir + "/" + subdir).c_str(), 0755) == 0) {
      // A new directory is durable once its parent is (a power cut).
      if (!FsyncDir(dir)) {
        failed("fsync directory", dir);
        break;
      }
    } else if (errno != EEXIST) {
      failed("mkdir", subdir);
      break;
    }
    if (i % 8 == 6 && acked.size() > 32) {
      // Removal of an acknowledged file: durable once its directory is.
      const size_t at = rng() % acked.size();
      const std::string rel = acked[at];
      Record(ledger, "removing", rel, "");
      if (::unlink((dir + "/" + rel).c_str()) != 0) {
        failed("unlink", rel);
        break;
      }
      if (!FsyncDir(dir + "/" + rel.substr(0, rel.find('/')))) {
        failed("fsync directory of", rel);
        break;
      }
      Record(ledger, "removed", rel, "");
      acked.erase(acked.begin() + static_cast<std::ptrdiff_t>(at));
      continue;
    }
    std::string data = Content(rng);
    if (i % 4 == 3 && !acked.empty()) {
      // Atomic replacement of an acknowledged file.
      std::string rel = acked[rng() % acked.size()];
      std::string tmp = dir + "/" + rel + ".tmp";
      if (!WriteDurably(tmp, data)) {
        failed("write", tmp);
        break;
      }
      Record(ledger, "pending", rel, data);
      if (::rename(tmp.c_str(), (dir + "/" + rel).c_str()) != 0) {
        failed("rename", tmp);
        break;
      }
      if (!FsyncDir(dir + "/" + rel.substr(0, rel.find('/')))) {
        failed("fsync directory of", rel);
        break;
      }
      Record(ledger, "ack", rel, data);
      continue;
    }
    std::string rel = subdir + "/f" + std::to_string(i);
    if (!WriteDurably(dir + "/" + rel, data)) {
      failed("write", rel);
      break;
    }
    // A new name is durable once its directory is.
    if (!FsyncDir(dir + "/" + subdir)) {
      failed("fsync directory", subdir);
      break;
    }
    Record(ledger, "ack", rel, data);
    acked.push_back(rel);
  }
  std::fclose(ledger);
  return 0;
}

int Check(const std::string& dir, const std::string& ledger_path) {
  std::ifstream in(ledger_path);
  // Per path: the last acknowledged (size, hash) and the pending ones after it.
  struct Expect {
    std::string acked;
    std::set<std::string> pending;
    bool removing = false;  // its removal began: gone is fine
    bool removed = false;   // its removal is durable: it must be gone
  };
  std::map<std::string, Expect> expect;
  std::string line;
  size_t records = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string kind, rel, size, hash;
    if (!(fields >> kind >> rel >> size >> hash)) continue;  // a torn last line
    std::string value = size + " " + hash;
    if (kind == "ack") {
      expect[rel].acked = value;
      expect[rel].pending.clear();
      ++records;
    } else if (kind == "pending" && expect.count(rel) != 0) {
      expect[rel].pending.insert(value);
    } else if (kind == "removing" && expect.count(rel) != 0) {
      expect[rel].removing = true;
    } else if (kind == "removed" && expect.count(rel) != 0) {
      expect[rel].removed = true;
      ++records;
    }
  }
  int bad = 0;
  for (const auto& [rel, e] : expect) {
    struct stat st {};
    const bool there = ::lstat((dir + "/" + rel).c_str(), &st) == 0;
    if (e.removed || (e.removing && !there)) {
      if (e.removed && there) {
        std::printf("BACK %s: removed (its directory fsynced), but there again\n", rel.c_str());
        ++bad;
      }
      continue;
    }
    std::ifstream file(dir + "/" + rel, std::ios::binary);
    if (!file) {
      std::printf("LOST %s: acknowledged (%s) but cannot be opened\n", rel.c_str(),
                  e.acked.c_str());
      ++bad;
      continue;
    }
    std::ostringstream content;
    content << file.rdbuf();
    const std::string data = content.str();
    char value[64];
    std::snprintf(value, sizeof(value), "%zu %016llx", data.size(),
                  static_cast<unsigned long long>(Hash(data)));  // NOLINT
    if (value != e.acked && e.pending.count(value) == 0) {
      std::printf("CORRUPT %s: holds (%s), acknowledged (%s)\n", rel.c_str(), value,
                  e.acked.c_str());
      ++bad;
    }
  }
  std::printf("checked %zu files (%zu acknowledgements): %d lost, corrupt or back\n", expect.size(),
              records, bad);
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"detourfs-crash-workload: fsync-acknowledged writes, and their check"};
  app.require_subcommand(1);
  std::string dir;
  std::string ledger;
  uint64_t seed = 1;
  uint64_t files = 1000000;
  CLI::App* run = app.add_subcommand("run", "Write acknowledged files until failure");
  run->add_option("--dir", dir)->required();
  run->add_option("--ledger", ledger)->required();
  run->add_option("--seed", seed);
  run->add_option("--files", files);
  CLI::App* check = app.add_subcommand("check", "Check every acknowledged file");
  check->add_option("--dir", dir)->required();
  check->add_option("--ledger", ledger)->required();
  CLI11_PARSE(app, argc, argv);
  if (run->parsed()) return Run(dir, ledger, seed, files);
  return Check(dir, ledger);
}
