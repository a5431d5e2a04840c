// setattr — Valid replies: fuse_reply_attr, fuse_reply_err.
#include "fuse/kill_suidgid.h"
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {
namespace {

SetAttrRequest Unpack(const struct stat& attr, int to_set) {
  SetAttrRequest r;
  if (to_set & FUSE_SET_ATTR_MODE) r.mode = attr.st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) r.uid = attr.st_uid;
  if (to_set & FUSE_SET_ATTR_GID) r.gid = attr.st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) r.size = attr.st_size;
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    r.atime = timespec{0, UTIME_NOW};
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    r.atime = attr.st_atim;
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    r.mtime = timespec{0, UTIME_NOW};
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    r.mtime = attr.st_mtim;
  }
  r.kill_suidgid = TakeKillSuidgid(attr, to_set);
  return r;
}

}  // namespace

void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
             fuse_file_info* fi) noexcept {
  Guarded(req, "setattr", [&] {
    Result<struct stat> r = FuseContext::From(req).overlay->SetAttr(ino, Unpack(*attr, to_set),
                                                                    fi ? FileOf(fi) : nullptr);
    if (!r.ok()) return ReplyErr(req, r.error(), "setattr");
    ReplyAttr(req, *r);
  });
}

}  // namespace detourfs::fuseops
