// open — Valid replies: fuse_reply_open, fuse_reply_err.
#include "fuse/kill_suidgid.h"
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Guarded(req, "open", [&] {
    Overlay* overlay = FuseContext::From(req).overlay;
    const bool kill_suidgid = TakeKillSuidgid(fi);  // an O_TRUNC without CAP_FSETID
    Result<FileHandle*> r = overlay->Open(ino, fi->flags);
    if (!r.ok()) return ReplyErr(req, r.error(), "open");
    if (kill_suidgid) {
      SetAttrRequest kill;
      kill.kill_suidgid = true;
      Result<struct stat> killed = overlay->SetAttr(ino, kill, *r);
      if (!killed.ok()) {
        overlay->Release(*r);
        return ReplyErr(req, killed.error(), "open");
      }
    }
    // The page cache stays valid across opens: every change goes through
    // the mount (see docs/caching.md).
    fi->keep_cache = 1;
    fi->fh = reinterpret_cast<uint64_t>(*r);
    // The kernel owns the handle now (freed in Release), unless the opener
    // is gone.
    if (fuse_reply_open(req, fi) != 0) overlay->Release(*r);
  });
}

}  // namespace detourfs::fuseops
