// Small file helpers for tests: whole-file read/write and stat, returning
// errno values instead of throwing.
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <functional>
#include <string>
#include <vector>

namespace detourfs::testing {

// 0 or errno.
int WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644);
// The file's content; `err` (if given) gets 0 or an errno.
std::string ReadFile(const std::string& path, int* err = nullptr);
// lstat; st_ino 0 with `err` set on failure.
struct stat Lstat(const std::string& path, int* err = nullptr);
// The names in a directory, sorted, without "." and ".."; empty on error.
std::vector<std::string> ListDir(const std::string& path);
// A deterministic pseudo-random string of `n` bytes.
std::string Pattern(size_t n, unsigned seed);
// 0 for a syscall's non-negative result, else errno.
// Polls `done` until it holds or a generous bound (30 s) passes: for work
// the daemon does in the background (its trash). Not a timing assertion:
// the bound only keeps a broken daemon from hanging the test.
bool Eventually(const std::function<bool()>& done);

inline int Err(long rc) { return rc < 0 ? errno : 0; }  // NOLINT(google-runtime-int)

}  // namespace detourfs::testing
