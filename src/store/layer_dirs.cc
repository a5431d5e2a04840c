// Opening and making each layer's directories (layer_dirs.h).
#include "store/layer_dirs.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "store/markers.h"
#include "store/tree_walk.h"
#include "sys/sys.h"
#include "sys/tmp_file.h"

namespace detourfs {
namespace {

constexpr const char* kFormatName = "format";
constexpr std::string_view kFormat2 = "detourfs-tier 2\n";

Status Unsafe(const std::string& what, const std::string& root, const std::string& why) {
  return Status::InvalidArgument(what + " '" + root + "' " + why);
}

SharedFd Share(UniqueFd fd) { return std::make_shared<const UniqueFd>(std::move(fd)); }

// Makes (if missing) and opens the directory `name` in `root`.
Status Subdir(const std::string& root_path, int root, const char* name, mode_t mode, SharedFd* out,
              bool* created = nullptr) {
  const std::string path = root_path + "/" + name;
  Result<void> made = sys::MkdirAt(root, name, mode);
  if (created) *created = made.ok();
  if (!made.ok() && made.error() != EEXIST) {
    return Status::FromErrno(made.error(), "cannot create '" + path + "'");
  }
  Result<UniqueFd> fd = sys::OpenBeneath(root, name, O_PATH | O_DIRECTORY);
  if (!fd.ok()) {
    if (fd.error() == ELOOP || fd.error() == ENOTDIR) {
      return Status::InvalidArgument("'" + path + "' is a symlink or not a directory");
    }
    return Status::FromErrno(fd.error(), "cannot open '" + path + "'");
  }
  *out = Share(std::move(*fd));
  return Status::OK();
}

// Reads a small file `name` in `dirfd`; "" when missing.
Result<std::string> ReadSmall(int dirfd, const char* name) {
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, O_RDONLY);
  if (!fd.ok())
    return fd.error() == ENOENT ? Result<std::string>(std::string()) : Errno{fd.error()};
  std::string text(4096, '\0');
  Result<size_t> n = sys::Read(fd->get(), text.data(), text.size());
  if (!n.ok()) return Errno{n.error()};
  text.resize(*n);
  return text;
}

// Writes a small file whole: aside, synced, renamed into place.
// Files a crash left half-made under TmpFile's private names (only where
// the filesystem has no O_TMPFILE): nothing refers to them.
void RemoveTmpfileLeftovers(int dir) {
  Result<std::vector<WalkItem>> items = ListDir(dir);
  if (!items.ok()) return;
  for (const WalkItem& item : *items) {
    if (!sys::IsTmpfileName(item.name) || !S_ISREG(item.type)) continue;
    if (sys::UnlinkAt(dir, item.name.c_str(), 0).ok()) {
      spdlog::info("removed '{}', a file a crash left half-made", item.name);
    }
  }
}

Result<void> WriteSmall(int dirfd, const char* name, const std::string& text) {
  Result<sys::TmpFile> tmp = sys::OpenTmpfile(dirfd, 0600);
  if (!tmp.ok()) return Errno{tmp.error()};
  DETOURFS_TRY(sys::WriteAll(tmp->get(), text.data(), text.size()));
  DETOURFS_TRY(sys::Fsync(tmp->get(), true));
  const std::string part = std::string(name) + ".new";
  (void)sys::UnlinkAt(dirfd, part.c_str(), 0);
  DETOURFS_TRY(tmp->Link(dirfd, part.c_str()));
  DETOURFS_TRY(sys::RenameAt(dirfd, part.c_str(), dirfd, name, 0));
  return sys::SyncDir(dirfd);
}

// Format 1 to 2: whiteouts lose their positive mark, a user's 0:0 device
// gains the device mark, the origin inode number becomes the id, and a
// spill token names its layer (format 1 spilled only to the disk tier).
Result<size_t> MigrateFormat1(int upper) {
  size_t changed = 0;
  WalkCallbacks cb;
  cb.visit = [&](const WalkDir& parent, const WalkItem& item) -> Result<bool> {
    const int pfd = parent.fds[0];
    Result<struct stat> st = sys::StatAt(pfd, item.name.c_str());
    if (!st.ok()) return st.error() == ENOENT ? Result<bool>(false) : Errno{st.error()};
    if (S_ISLNK(st->st_mode)) return false;
    Result<UniqueFd> fd = sys::OpenBeneath(pfd, item.name.c_str(), O_PATH);
    if (!fd.ok()) return Errno{fd.error()};
    if (markers::MaybeWhiteout(*st)) {
      Result<bool> v1 = markers::HasFlag(fd->get(), markers::kV1WhiteoutXattr);
      if (!v1.ok()) return Errno{v1.error()};
      if (*v1) {
        DETOURFS_TRY(markers::ClearFlag(fd->get(), markers::kV1WhiteoutXattr));
      } else {
        DETOURFS_TRY(markers::SetFlag(fd->get(), markers::kDeviceXattr));
      }
      ++changed;
      return false;
    }
    // Format 1 kept the inode number of a copied-up file in "origin" and a
    // stub's token (its data always in the disk tier's store) in "spilled",
    // both 8 bytes in host order; format 2 keeps both in the id record.
    Result<uint64_t> origin = markers::GetNumber(fd->get(), markers::kV1OriginXattr);
    Result<uint64_t> spilled = markers::GetNumber(fd->get(), markers::kV1SpilledXattr);
    Result<bool> opaque = markers::HasFlag(fd->get(), markers::kV1OpaqueXattr);
    if (!origin.ok()) return Errno{origin.error()};
    if (!spilled.ok()) return Errno{spilled.error()};
    if (!opaque.ok()) return Errno{opaque.error()};
    if (*origin != 0 || *spilled != 0 || *opaque) {
      markers::IdRecord rec;
      rec.id = *origin;  // 0: one is assigned at its next lookup
      rec.opaque = *opaque;
      if (*spilled != 0) rec.spill = markers::SpillRef{Layer::kDisk, *spilled};
      DETOURFS_TRY(markers::SetIdRecord(fd->get(), rec));
      DETOURFS_TRY(markers::ClearFlag(fd->get(), markers::kV1OriginXattr));
      DETOURFS_TRY(markers::ClearFlag(fd->get(), markers::kV1SpilledXattr));
      DETOURFS_TRY(markers::ClearFlag(fd->get(), markers::kV1OpaqueXattr));
      // (A format 1 stub has mode 0000 — its data file had the attributes;
      // format 2 stubs keep the file's own. Such a stub reads as mode 0000
      // until chmod'ed: format 1 was never released with routing on.)
      ++changed;
    }
    return S_ISDIR(st->st_mode);
  };
  DETOURFS_TRY(WalkTrees({upper, -1, -1, -1}, cb));
  return changed;
}

}  // namespace

Status OpenTierDirs(const TierConfig& tier, LayerDirs* out) {
  const std::string what = "tier " + std::string(TierName(tier.id)) + " root";
  const std::filesystem::path root(tier.root);
  std::error_code ec;
  if (root.has_parent_path()) std::filesystem::create_directories(root.parent_path(), ec);
  if (ec) {
    return Status::FromErrno(ec.value(), "cannot create '" + root.parent_path().string() + "'");
  }
  if (Result<void> made = sys::MkdirAt(AT_FDCWD, tier.root.c_str(), 0700);
      !made.ok() && made.error() != EEXIST) {
    return Status::FromErrno(made.error(), "cannot create " + what + " '" + tier.root + "'");
  }
  Result<UniqueFd> opened = sys::OpenPath(tier.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!opened.ok()) {
    if (opened.error() == ELOOP || opened.error() == ENOTDIR) {
      return Unsafe(what, tier.root, "is a symlink or not a directory");
    }
    return Status::FromErrno(opened.error(), "cannot open " + what + " '" + tier.root + "'");
  }
  UniqueFd root_fd = std::move(*opened);
  Result<struct stat> st = sys::Fstat(root_fd.get());
  if (!st.ok()) return Status::FromErrno(st.error(), "cannot stat '" + tier.root + "'");
  if (st->st_uid != ::geteuid()) {
    return Unsafe(what, tier.root,
                  "is owned by another user (uid " + std::to_string(st->st_uid) + ")");
  }
  if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Unsafe(what, tier.root,
                  "is writable by group or others: chmod go-w it, or let detourfs create it");
  }
  out->layer = tier.id == TierId::kMemory ? Layer::kMemory : Layer::kDisk;
  out->dev = st->st_dev;
  const int r = root_fd.get();
  Result<std::string> format = ReadSmall(r, kFormatName);
  if (!format.ok()) return Status::FromErrno(format.error(), "cannot read the tier's format");
  bool created = false;
  if (Status s = Subdir(tier.root, r, "upper", 0755, &out->tree, &created); !s.ok()) return s;
  out->adopted = !created;
  if (!format->empty() && format->substr(0, kFormat2.size()) != kFormat2) {
    return Status::NotSupported("tier '" + tier.root + "' has a format this version of detourfs " +
                                "does not know: " + format->substr(0, format->find('\n')));
  }
  if (format->empty() && !created) {
    Result<size_t> n = MigrateFormat1(out->tree->get());
    if (!n.ok()) {
      return Status::FromErrno(n.error(), "cannot convert tier '" + tier.root + "' to format 2");
    }
    spdlog::info("tier {}: converted from format 1 ({} markers rewritten)", TierName(tier.id), *n);
    out->migrated = true;
  }
  // Staging holds entries made by the caller's credentials (a user's create
  // that replaces a whiteout is built here with the parent's default ACL),
  // so it is writable by all; the root's 0700 keeps everyone else out.
  if (Status s = Subdir(tier.root, r, "work", 01777, &out->work); !s.ok()) return s;
  if (Status s = Subdir(tier.root, r, "trash", 0700, &out->trash); !s.ok()) return s;
  if (Status s = Subdir(tier.root, r, "index", 0700, &out->index); !s.ok()) return s;
  if (Status s = Subdir(tier.root, r, "spill", 0700, &out->spill); !s.ok()) return s;
  if (Status s = Subdir(tier.root, r, "intents", 0700, &out->intents); !s.ok()) return s;
  if (Status s = Subdir(tier.root, r, "kept", 0700, &out->kept); !s.ok()) return s;
  if (Status s = Subdir(tier.root, r, "journal", 0700, &out->journal, &out->journal_new); !s.ok()) {
    return s;
  }
  RemoveTmpfileLeftovers(r);
  RemoveTmpfileLeftovers(out->spill->get());
  if (format->empty()) {
    const std::string text = std::string(kFormat2) + "instance " + std::to_string(st->st_ino) +
                             "-" + std::to_string(::time(nullptr)) + "\n";
    if (Result<void> w = WriteSmall(r, kFormatName, text); !w.ok()) {
      return Status::FromErrno(w.error(), "cannot write the tier's format file");
    }
  }
  out->root = Share(std::move(root_fd));
  return Status::OK();
}

Status OpenVolumeDirs(UniqueFd lower, bool with_private, LayerDirs* out) {
  Result<struct stat> st = sys::Fstat(lower.get());
  if (!st.ok()) return Status::FromErrno(st.error(), "cannot stat the volume's root");
  if (!S_ISDIR(st->st_mode)) return Status::InvalidArgument("the volume's root is not a directory");
  out->layer = Layer::kVolume;
  out->dev = st->st_dev;
  out->tree = Share(std::move(lower));
  if (!with_private) return Status::OK();
  const std::string where = "the volume's " + std::string(kPrivateDirName);
  const int v = out->tree->get();
  if (Status s = Subdir(where, v, kPrivateDirName, 0700, &out->root, nullptr); !s.ok()) return s;
  Result<struct stat> pst = sys::Fstat(out->root->get());
  if (!pst.ok()) return Status::FromErrno(pst.error(), "cannot stat " + where);
  if (pst->st_uid != ::geteuid() || (pst->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::InvalidArgument(where + " is not detourfs's (owned by uid " +
                                   std::to_string(pst->st_uid) +
                                   " or writable by others): move it aside");
  }
  if (pst->st_dev != out->dev) {
    return Status::InvalidArgument(where + " is on another filesystem than the volume");
  }
  const int p = out->root->get();
  if (Status s = Subdir(where, p, "work", 01777, &out->work); !s.ok()) return s;
  if (Status s = Subdir(where, p, "trash", 0700, &out->trash); !s.ok()) return s;
  if (Status s = Subdir(where, p, "spill", 0700, &out->spill); !s.ok()) return s;
  if (Status s = Subdir(where, p, "held", 0700, &out->held); !s.ok()) return s;
  RemoveTmpfileLeftovers(p);
  RemoveTmpfileLeftovers(out->spill->get());
  out->adopted = true;
  return Status::OK();
}

}  // namespace detourfs
