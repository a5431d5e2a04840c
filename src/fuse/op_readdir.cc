// readdir, readdirplus — Valid replies: fuse_reply_buf, fuse_reply_data,
// fuse_reply_err. In plus mode every entry handed over carries a lookup
// reference; the overlay undoes the lookup of an entry that did not fit, and
// the references of a reply the kernel did not take are given back here.
#include <limits.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {
namespace {

// The lookup references of the entries put in a readdirplus reply: given
// back unless the kernel took the reply (a failed reply, an exception).
struct HandedOver {
  Overlay* overlay = nullptr;
  std::vector<uint64_t> inos;
  bool delivered = false;
  ~HandedOver() {
    if (delivered) return;
    for (uint64_t ino : inos) overlay->Forget(ino, 1);
  }
};

void DoReadDir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  FuseContext& ctx = FuseContext::From(req);
  std::vector<char> buf(size);
  size_t used = 0;
  HandedOver handed{ctx.overlay, {}, false};
  // Room for every entry that can fit, so that recording one never
  // allocates (an entry is at least 24 bytes, 152 in plus mode).
  if (plus) handed.inos.reserve(size / 24 + 1);
  auto emit = [&](const DirEntry& e) {
    // No allocation from here on: an exception after the overlay looked an
    // entry up would lose its reference.
    char name[NAME_MAX + 1];
    const size_t len = std::min(e.name.size(), sizeof(name) - 1);
    std::memcpy(name, e.name.data(), len);
    name[len] = '\0';
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
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &p, e.next_offset);
    } else {
      struct stat st {};
      st.st_ino = e.ino;
      st.st_mode = e.type;
      n = fuse_add_direntry(req, buf.data() + used, size - used, name, &st, e.next_offset);
    }
    if (n > size - used) return false;  // the overlay gives its reference back
    used += n;
    if (plus && e.entry && handed.inos.size() < handed.inos.capacity()) {
      handed.inos.push_back(e.entry->ino);
    }
    return true;
  };
  Result<void> r = ctx.overlay->ReadDir(*DirOf(fi), off, plus, emit);
  if (!r.ok() && used > 0) r = Result<void>();  // what fit is answered; the error comes next time
  if (!r.ok()) return ReplyErr(req, r.error(), plus ? "readdirplus" : "readdir");
  handed.delivered = fuse_reply_buf(req, buf.data(), used) == 0;
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
