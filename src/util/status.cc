// Status formatting and the errno bridge.
#include "detourfs/status.h"

#include <cstring>

namespace detourfs {

Status Status::FromErrno(int err, std::string context) {
  Code code = err == ENOENT ? Code::kNotFound : Code::kIOError;
  if (err == EINVAL) code = Code::kInvalidArgument;
  if (err == ENOTSUP || err == ENOSYS) code = Code::kNotSupported;
  return Status(code, std::move(context), err);
}

const char* ErrnoText(int err) {
  const char* text = ::strerrordesc_np(err);  // static strings, no shared buffer
  return text ? text : "unknown error";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  if (err_ == 0) return msg_;
  return msg_ + ": " + ErrnoText(err_);
}

}  // namespace detourfs
