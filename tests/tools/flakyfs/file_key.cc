// FileKey (file_key.h): file handles as strings (type, then the handle bytes).
#include "file_key.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>

namespace flakyfs {
namespace {

// A struct file_handle with room for the largest handle.
class HandleBuffer {
 public:
  file_handle* get() { return reinterpret_cast<file_handle*>(buf_); }  // NOLINT

 private:
  alignas(file_handle) unsigned char buf_[sizeof(file_handle) + MAX_HANDLE_SZ] = {};
};

int Encode(int dirfd, const char* name, int flags, FileKey* key) {
  HandleBuffer buf;
  file_handle* h = buf.get();
  h->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(dirfd, name, h, &mount_id, flags) != 0) return -errno;
  key->assign(reinterpret_cast<const char*>(&h->handle_type), sizeof(h->handle_type));  // NOLINT
  key->append(reinterpret_cast<const char*>(h->f_handle), h->handle_bytes);             // NOLINT
  return 0;
}

}  // namespace

int KeyOf(int fd, FileKey* key) { return Encode(fd, "", AT_EMPTY_PATH, key); }

int KeyAt(int dirfd, const std::string& name, FileKey* key) {
  return name.empty() ? Encode(dirfd, "", AT_EMPTY_PATH, key) : Encode(dirfd, name.c_str(), 0, key);
}

int OpenByKey(int mount_fd, const FileKey& key, int flags) {
  HandleBuffer buf;
  file_handle* h = buf.get();
  if (key.size() < sizeof(h->handle_type) || key.size() - sizeof(h->handle_type) > MAX_HANDLE_SZ) {
    return -EINVAL;
  }
  std::memcpy(&h->handle_type, key.data(), sizeof(h->handle_type));
  h->handle_bytes = static_cast<unsigned>(key.size() - sizeof(h->handle_type));
  std::memcpy(h->f_handle, key.data() + sizeof(h->handle_type), h->handle_bytes);
  int fd = open_by_handle_at(mount_fd, h, flags | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

}  // namespace flakyfs
