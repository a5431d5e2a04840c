// The fuse_lowlevel_ops table, alphabetical. flush, getlk, setlk and flock are
// left out deliberately: without them the kernel skips the FLUSH round trip on
// close (dirty pages are still written and their errors still returned by
// close) and keeps locks itself.
#include "fuse/ops.h"

namespace detourfs::fuseops {

const fuse_lowlevel_ops& OpsTable() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    // clang-format off
    o.copy_file_range = CopyFileRange;
    o.create          = Create;
    o.fallocate       = Fallocate;
    o.forget          = Forget;
    o.forget_multi    = ForgetMulti;
    o.fsync           = Fsync;
    o.fsyncdir        = FsyncDir;
    o.getattr         = GetAttr;
    o.getxattr        = GetXattr;
    o.init            = Init;
    o.link            = Link;
    o.listxattr       = ListXattr;
    o.lookup          = Lookup;
    o.lseek           = Lseek;
    o.mkdir           = Mkdir;
    o.mknod           = Mknod;
    o.open            = Open;
    o.opendir         = OpenDir;
    o.read            = Read;
    o.readdir         = ReadDir;
    o.readdirplus     = ReadDirPlus;
    o.readlink        = Readlink;
    o.release         = Release;
    o.releasedir      = ReleaseDir;
    o.removexattr     = RemoveXattr;
    o.rename          = Rename;
    o.rmdir           = Rmdir;
    o.setattr         = SetAttr;
    o.setxattr        = SetXattr;
    o.statfs          = StatFs;
    o.symlink         = Symlink;
    o.unlink          = Unlink;
    o.write_buf       = WriteBuf;
    // clang-format on
    return o;
  }();
  return ops;
}

}  // namespace detourfs::fuseops
