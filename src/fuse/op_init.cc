// init — negotiates capabilities and sizes with the kernel, once per session.
//
// Everything asked for here is safe because every change to the served tree
// goes through this mount (docs/caching.md says what happens otherwise).
#include <spdlog/spdlog.h>

#include "fuse/ops.h"

namespace detourfs::fuseops {
namespace {

void Want(fuse_conn_info* conn, unsigned cap) {
  if (conn->capable & cap) conn->want |= cap;
}

}  // namespace

void Init(void* userdata, fuse_conn_info* conn) {
  const FuseContext& context = *static_cast<FuseContext*>(userdata);
  const FuseSettings& s = context.settings;
  // Page cache for writes: the kernel merges small writes into large ones and
  // answers reads of fresh data itself. The kernel then owns mtime and size.
  if (s.writeback_cache) Want(conn, FUSE_CAP_WRITEBACK_CACHE);
  // Data moves between the kernel and the backing file by splice, without a
  // copy through this process. Requests are read whole when the transport's
  // hooks must see them (kill_suidgid.h): replies still splice, and writes
  // measured no slower read into memory (docs/benchmarks.md).
  if (s.splice) {
    if (context.transport == nullptr) Want(conn, FUSE_CAP_SPLICE_READ);
    Want(conn, FUSE_CAP_SPLICE_WRITE);
    Want(conn, FUSE_CAP_SPLICE_MOVE);
  }
  // readdirplus: one request lists a directory and looks up its entries, so
  // `ls -l`, find and git status do not pay a lookup per file; _AUTO lets the
  // kernel fall back to plain readdir when it does not need the attributes.
  Want(conn, FUSE_CAP_READDIRPLUS);
  Want(conn, FUSE_CAP_READDIRPLUS_AUTO);
  // Lookups and creates in one directory run in parallel (the kernel still
  // serializes changes to one directory).
  Want(conn, FUSE_CAP_PARALLEL_DIROPS);
  Want(conn, FUSE_CAP_ASYNC_READ);
  Want(conn, FUSE_CAP_ASYNC_DIO);
  // open(O_TRUNC) truncates in the same request instead of a separate setattr.
  Want(conn, FUSE_CAP_ATOMIC_O_TRUNC);
  // POSIX ACLs: the kernel enforces them from the xattrs we serve, and with
  // DONT_MASK it leaves the umask to us, so default ACLs can override it
  // (see overlay/caller_umask.h). POSIX_ACL implies default_permissions.
  Want(conn, FUSE_CAP_POSIX_ACL);
  Want(conn, FUSE_CAP_DONT_MASK);
  // Requests run as root, so the backing filesystem would keep S_ISUID on a
  // write. Not HANDLE_KILLPRIV: the kernel then clears the bits itself, or,
  // with HANDLE_KILLPRIV_V2 (accepted by the transport), asks us to
  // (kill_suidgid.h).
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  // Locks (flock and POSIX byte ranges) are not implemented here on purpose:
  // the kernel then keeps them locally, which is exact for a mount that is
  // the only way to the files.

  conn->max_write = s.max_write;
  conn->max_readahead = s.max_write;
  // Room for the kernel's writeback and readahead to run ahead of replies.
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  conn->time_gran = 1;
  spdlog::info("fuse session: protocol {}.{}, capabilities wanted 0x{:x} of 0x{:x}, max_write {}",
               conn->proto_major, conn->proto_minor, conn->want, conn->capable, conn->max_write);
}

}  // namespace detourfs::fuseops
