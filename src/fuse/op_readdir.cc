// readdir, readdirplus — Valid replies: fuse_reply_buf, fuse_reply_data,
// fuse_reply_err. In plus mode every entry handed over carries a lookup
// reference; the overlay undoes the lookup of an entry that did not fit.
#include <vector>

#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {
namespace {

void DoReadDir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  FuseContext& ctx = FuseContext::From(req);
  std::vector<char> buf(size);
  size_t used = 0;
  auto emit = [&](const DirEntry& e) {
    const std::string name(e.name);
    size_t n;
    if (plus) {
      fuse_entry_param p{};
      if (e.entry) {
        p.ino = e.entry->ino;
        p.attr = e.entry->attr;
        p.attr_timeout = ctx.settings.attr_timeout;
        p.entry_timeout = ctx.settings.entry_timeout;
      } else {  // "." and "..": listed, not looked up (ino 0)
        p.attr.st_ino = e.ino;
        p.attr.st_mode = e.type;
      }
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &p,
                                 e.next_offset);
    } else {
      struct stat st {};
      st.st_ino = e.ino;
      st.st_mode = e.type;
      n = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st, e.next_offset);
    }
    if (n > size - used) return false;
    used += n;
    return true;
  };
  Result<void> r = ctx.overlay->ReadDir(*DirOf(fi), off, plus, emit);
  if (!r.ok() && used > 0) r = Result<void>();  // what fit is answered; the error comes next time
  if (!r.ok()) return ReplyErr(req, r.error(), plus ? "readdirplus" : "readdir");
  fuse_reply_buf(req, buf.data(), used);
}

}  // namespace

void ReadDir(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off,
             fuse_file_info* fi) noexcept {
  Guarded(req, "readdir", [&] { DoReadDir(req, size, off, fi, false); });
}

void ReadDirPlus(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off,
                 fuse_file_info* fi) noexcept {
  Guarded(req, "readdirplus", [&] { DoReadDir(req, size, off, fi, true); });
}

}  // namespace detourfs::fuseops
