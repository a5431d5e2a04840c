// The FUSE low-level adapters, one per operation (op_<name>.cc), and the table
// that hands them to libfuse. Each unpacks a request, makes one overlay call
// and replies; none holds logic or makes a syscall.
#pragma once

#include "fuse/fuse_context.h"

namespace detourfs::fuseops {

// The fuse_lowlevel_ops table; the session's userdata must be a FuseContext.
const fuse_lowlevel_ops& OpsTable();

void Init(void* userdata, fuse_conn_info* conn);
void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept;
void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) noexcept;
void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) noexcept;
void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
             fuse_file_info* fi) noexcept;
void Readlink(fuse_req_t req, fuse_ino_t ino) noexcept;
void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) noexcept;
void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) noexcept;
void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept;
void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept;
void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) noexcept;
void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
            const char* newname, unsigned int flags) noexcept;
void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) noexcept;
void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
            fuse_file_info* fi) noexcept;
void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) noexcept;
void WriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* bufv, off_t off,
              fuse_file_info* fi) noexcept;
void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) noexcept;
void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) noexcept;
void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                 fuse_file_info* fi) noexcept;
void ReleaseDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
void FsyncDir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) noexcept;
void StatFs(fuse_req_t req, fuse_ino_t ino) noexcept;
void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) noexcept;
void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept;
void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept;
void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) noexcept;
void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
               fuse_file_info* fi) noexcept;
void CopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in,
                   fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                   int flags) noexcept;
void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) noexcept;

// The handles stored in fuse_file_info::fh.
inline FileHandle* FileOf(const fuse_file_info* fi) {
  return reinterpret_cast<FileHandle*>(fi->fh);
}
inline DirHandle* DirOf(const fuse_file_info* fi) { return reinterpret_cast<DirHandle*>(fi->fh); }

}  // namespace detourfs::fuseops
