// AsUser: runs a few syscalls as another user, never as root. Forks; the child
// drops to the given groups, gid and uid (setgroups, setresgid, setresuid),
// runs `fn` and sends its result (0 or an errno) back over a pipe.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <functional>
#include <string>
#include <vector>

namespace detourfs::testing {

constexpr uid_t kUser = 65534;   // nobody
constexpr gid_t kGroup = 65534;  // nogroup
constexpr uid_t kOtherUser = 4242;
constexpr gid_t kOtherGroup = 4242;

// Runs `fn` in a forked child and returns its result (0 or an errno), or -1
// if the child died.
int InChild(const std::function<int()>& fn);

// `fn` returns 0 or an errno. AsUser returns that, or -1 if the child failed
// to switch identity or died.
int AsUser(uid_t uid, gid_t gid, const std::function<int()>& fn,
           const std::vector<gid_t>& groups = {});

// Opens `path` with `flags` (and `mode`, for O_CREAT) as `uid`/`gid` and
// closes it: 0, or the errno of the open.
int OpenAsUser(uid_t uid, gid_t gid, const std::string& path, int flags, mode_t mode = 0644);

// Helpers for `fn`: the errno of a failed call, or 0.
inline int ErrnoOf(long rc) { return rc < 0 ? errno : 0; }  // NOLINT

}  // namespace detourfs::testing
