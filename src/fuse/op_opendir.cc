// opendir, releasedir — Valid replies: fuse_reply_open (opendir),
// fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Guarded(req, "opendir", [&] {
    Result<DirHandle*> r = FuseContext::From(req).overlay->OpenDir(ino);
    if (!r.ok()) return ReplyErr(req, r.error(), "opendir");
    fi->fh = reinterpret_cast<uint64_t>(*r);
    // The kernel owns it now (freed in ReleaseDir). A failed reply is not
    // freed here (as in create: the kernel may have it after all); it stays
    // tracked, freed by a RELEASEDIR or at unmount.
    (void)fuse_reply_open(req, fi);
  });
}

void ReleaseDir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) noexcept {
  FuseContext::From(req).overlay->ReleaseDir(DirOf(fi));
  ReplyOk(req);
}

}  // namespace detourfs::fuseops
