// setxattr, getxattr, listxattr, removexattr — Valid replies:
// fuse_reply_buf and fuse_reply_xattr (get/list), fuse_reply_err.
#include <vector>

#include "fuse/kill_suidgid.h"
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) noexcept {
  const bool kill_sgid = TakeAclKillSgid(&flags);
  Result<void> r =
      FuseContext::From(req).overlay->SetXattr(ino, name, value, size, flags, kill_sgid);
  if (!r.ok()) return ReplyErr(req, r.error(), "setxattr");
  ReplyOk(req);
}

void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept {
  Guarded(req, "getxattr", [&] {
    std::vector<char> buf(size);
    Result<size_t> r = FuseContext::From(req).overlay->GetXattr(ino, name, buf.data(), size);
    if (!r.ok()) return ReplyErr(req, r.error(), "getxattr");
    if (size == 0) return (void)fuse_reply_xattr(req, *r);
    fuse_reply_buf(req, buf.data(), *r);
  });
}

void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept {
  Guarded(req, "listxattr", [&] {
    std::vector<char> buf(size);
    Result<size_t> r = FuseContext::From(req).overlay->ListXattr(ino, buf.data(), size);
    if (!r.ok()) return ReplyErr(req, r.error(), "listxattr");
    if (size == 0) return (void)fuse_reply_xattr(req, *r);
    fuse_reply_buf(req, buf.data(), *r);
  });
}

void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) noexcept {
  Result<void> r = FuseContext::From(req).overlay->RemoveXattr(ino, name);
  if (!r.ok()) return ReplyErr(req, r.error(), "removexattr");
  ReplyOk(req);
}

}  // namespace detourfs::fuseops
