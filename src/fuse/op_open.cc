// open — Valid replies: fuse_reply_open, fuse_reply_err.
#include "fuse/kill_suidgid.h"
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Guarded(req, "open", [&] {
    Overlay* overlay = FuseContext::From(req).overlay;
    const bool kill_suidgid = TakeKillSuidgid(fi);  // an O_TRUNC without CAP_FSETID
    Result<std::unique_ptr<FileHandle>> r = overlay->Open(ino, fi->flags);
    if (!r.ok()) return ReplyErr(req, r.error(), "open");
    if (kill_suidgid) {
      Result<void> killed = overlay->KillSuidgid(ino, r->get());
      if (!killed.ok()) {
        overlay->Release(std::move(*r));
        return ReplyErr(req, killed.error(), "open");
      }
    }
    // The page cache stays valid across opens: every change goes through
    // the mount (see docs/caching.md).
    fi->keep_cache = 1;
    fi->fh = reinterpret_cast<uint64_t>(r->get());
    if (fuse_reply_open(req, fi) == 0) {
      static_cast<void>(r->release());  // the kernel owns it now; freed in Release
    } else {
      overlay->Release(std::move(*r));  // the opener is gone
    }
  });
}

}  // namespace detourfs::fuseops
