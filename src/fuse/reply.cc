// Reply helpers: entries with timeouts, errors with one log line.
#include "fuse/reply.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "detourfs/status.h"

namespace detourfs::fuseops {
namespace {

// Errnos a healthy filesystem does not produce on its own: the volume is
// failing, full or read-only, or detourfs itself is short of resources.
bool IsTrouble(int err) {
  switch (err) {
    case EIO:
    case ENOSPC:
    case EDQUOT:
    case EROFS:
    case ESTALE:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EUCLEAN:
    case EBADF:
    case EFAULT:
    case ENOTCONN:
      return true;
    default:
      return false;
  }
}

fuse_entry_param EntryParam(const FuseContext& ctx, const Entry& entry) {
  fuse_entry_param e{};
  e.ino = entry.ino;
  e.generation = 0;  // node ids are never reused while the daemon runs
  e.attr = entry.attr;
  e.attr_timeout = ctx.settings.attr_timeout;
  e.entry_timeout = ctx.settings.entry_timeout;
  return e;
}

}  // namespace

Caller CallerOf(fuse_req_t req, bool with_groups) {
  const fuse_ctx* c = fuse_req_ctx(req);
  Caller caller{c->uid, c->gid, c->pid, c->umask, {}, false};
  if (with_groups) {
    // The supplementary groups of the calling thread (from /proc), for
    // entries made with its credentials: cached briefly per process.
    FuseContext& ctx = FuseContext::From(req);
    caller.groups_known = ctx.groups.Get(req, c->pid, c->uid, c->gid, &caller.groups);
  }
  return caller;
}

fuse_bufvec FdBufvec(int fd, size_t size, off_t off) {
  fuse_bufvec v{};
  v.count = 1;
  v.buf[0].size = size;
  v.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  v.buf[0].fd = fd;
  v.buf[0].pos = off;
  return v;
}

void ReplyErr(fuse_req_t req, int err, const char* op) {
  if (IsTrouble(err)) {
    spdlog::warn("{} failed: {} (errno {})", op, ErrnoText(err), err);
  } else {
    spdlog::debug("{}: {}", op, ErrnoText(err));
  }
  fuse_reply_err(req, err);
}

void ReplyOk(fuse_req_t req) { fuse_reply_err(req, 0); }

void ReplyEntry(fuse_req_t req, const Entry& entry) {
  FuseContext& ctx = FuseContext::From(req);
  fuse_entry_param e = EntryParam(ctx, entry);
  if (fuse_reply_entry(req, &e) != 0) ctx.overlay->Forget(e.ino, 1);
}

void ReplyNoEntry(fuse_req_t req) {
  FuseContext& ctx = FuseContext::From(req);
  if (ctx.settings.negative_timeout <= 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fuse_entry_param e{};  // ino 0: a cacheable "no such name"
  e.entry_timeout = ctx.settings.negative_timeout;
  fuse_reply_entry(req, &e);
}

void ReplyAttr(fuse_req_t req, const struct stat& st) {
  fuse_reply_attr(req, &st, FuseContext::From(req).settings.attr_timeout);
}

bool ReplyCreate(fuse_req_t req, const Entry& entry, fuse_file_info* fi) {
  FuseContext& ctx = FuseContext::From(req);
  fuse_entry_param e = EntryParam(ctx, entry);
  if (fuse_reply_create(req, &e, fi) == 0) return true;
  ctx.overlay->Forget(e.ino, 1);
  return false;
}

}  // namespace detourfs::fuseops

namespace detourfs::fuseops {

void ReplyException(fuse_req_t req, const char* op) noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    ReplyErr(req, ENOMEM, op);
  } catch (const std::exception& e) {
    spdlog::error("{}: unexpected exception: {}", op, e.what());
    fuse_reply_err(req, EIO);
  } catch (...) {
    spdlog::error("{}: unexpected exception", op);
    fuse_reply_err(req, EIO);
  }
}

}  // namespace detourfs::fuseops
