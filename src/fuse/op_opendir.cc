// opendir, releasedir — Valid replies: fuse_reply_open (opendir),
// fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Guarded(req, "opendir", [&] {
    Result<std::unique_ptr<DirHandle>> r = FuseContext::From(req).overlay->OpenDir(ino);
    if (!r.ok()) return ReplyErr(req, r.error(), "opendir");
    fi->fh = reinterpret_cast<uint64_t>(r->get());
    if (fuse_reply_open(req, fi) == 0) {
      static_cast<void>(r->release());  // the kernel owns it now; freed in ReleaseDir
    } else {
      FuseContext::From(req).overlay->ReleaseDir(std::move(*r));  // the opener is gone
    }
  });
}

void ReleaseDir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) noexcept {
  FuseContext::From(req).overlay->ReleaseDir(std::unique_ptr<DirHandle>(DirOf(fi)));
  ReplyOk(req);
}

}  // namespace detourfs::fuseops
