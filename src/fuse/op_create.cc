// create — Valid replies: fuse_reply_create, fuse_reply_err.
#include "fuse/kill_suidgid.h"
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
            fuse_file_info* fi) noexcept {
  Guarded(req, "create", [&] {
    Overlay* overlay = FuseContext::From(req).overlay;
    // The kill mark comes with any O_TRUNC by a caller without CAP_FSETID;
    // it concerns only a file that exists (the kernel's "no such name" was
    // stale), and a file made here gets the mode asked for.
    const bool kill_suidgid = TakeKillSuidgid(fi);
    auto r = overlay->Create(parent, name, mode, fi->flags, CallerOf(req, true), kill_suidgid);
    if (!r.ok()) return ReplyErr(req, r.error(), "create");
    auto& [entry, fh] = *r;
    fi->keep_cache = 1;
    fi->fh = reinterpret_cast<uint64_t>(fh);
    // The kernel owns it now (freed in Release). A failed reply is not
    // freed here: through io_uring a commit the kernel took was once
    // reported failed (its fetch cancelled), and the kernel's RELEASE then
    // freed it a second time (ASan saw it in CI). Such replies now count as
    // delivered (uring_transport.cc, Refused); the handle stays tracked all
    // the same: freed by a RELEASE, or at unmount.
    (void)ReplyCreate(req, entry, fi);
  });
}

}  // namespace detourfs::fuseops
