// OpenTierRoot (tier_root.h).
#include "store/tier_root.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace detourfs {
namespace {

Status Unsafe(const TierConfig& tier, const std::string& why) {
  return Status::InvalidArgument("tier " + std::string(TierName(tier.id)) + " root '" + tier.root +
                                 "' " + why);
}

// Makes (if missing) and opens the directory `name` in the tier root `root`;
// `created` says which.
Status OpenSubdir(const TierConfig& tier, int root, const char* name, mode_t mode, UniqueFd* out,
                  bool* created) {
  const std::string path = tier.root + "/" + name;
  *created = ::mkdirat(root, name, mode) == 0;
  if (!*created && errno != EEXIST) return Status::FromErrno(errno, "cannot create '" + path + "'");
  int fd = ::openat(root, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return Unsafe(tier,
                    "holds '" + std::string(name) + "', which is a symlink or not a directory");
    }
    return Status::FromErrno(errno, "cannot open '" + path + "'");
  }
  *out = UniqueFd(fd);
  return Status::OK();
}

}  // namespace

Status OpenTierRoot(const TierConfig& tier, OpenedTier* out) {
  const std::filesystem::path root(tier.root);
  std::error_code ec;
  if (root.has_parent_path()) std::filesystem::create_directories(root.parent_path(), ec);
  if (ec)
    return Status::FromErrno(ec.value(), "cannot create '" + root.parent_path().string() + "'");
  if (::mkdir(tier.root.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "cannot create tier root '" + tier.root + "'");
  }
  int fd = ::open(tier.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR) return Unsafe(tier, "is a symlink or not a directory");
    return Status::FromErrno(errno, "cannot open tier root '" + tier.root + "'");
  }
  out->root = UniqueFd(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::FromErrno(errno, "cannot stat '" + tier.root + "'");
  if (st.st_uid != ::geteuid())
    return Unsafe(tier, "is owned by another user (uid " + std::to_string(st.st_uid) + ")");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Unsafe(tier, "is writable by group or others: chmod go-w it, or let detourfs create it");
  }
  bool created = false;
  if (Status s = OpenSubdir(tier, fd, "upper", 0755, &out->upper, &created); !s.ok()) return s;
  out->adopted = !created;
  if (Status s = OpenSubdir(tier, fd, "spill", 0700, &out->spill, &created); !s.ok()) return s;
  return OpenSubdir(tier, fd, "moves", 0700, &out->moves, &created);
}

}  // namespace detourfs
