// Status: the error type of the slow path (daemon start-up, options, and later
// config, journal and flush), where a human reads the message. Modelled on
// leveldb::Status: success carries nothing; failures carry a code, a context
// message naming the path or object, and the originating errno if any.
#pragma once

#include <string>
#include <utility>

namespace detourfs {

class [[nodiscard]] Status {
 public:
  enum class Code { kOk, kNotFound, kInvalidArgument, kIOError, kNotSupported, kCorruption };

  Status() = default;

  static Status OK() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg), 0); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg), 0);
  }
  static Status IOError(std::string msg, int err = 0) {
    return Status(Code::kIOError, std::move(msg), err);
  }
  static Status NotSupported(std::string msg) {
    return Status(Code::kNotSupported, std::move(msg), 0);
  }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg), 0); }
  // The single bridge from an errno: `context` names what failed, e.g.
  // "cannot open lower directory '/home/coder'".
  static Status FromErrno(int err, std::string context);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  int err() const { return err_; }
  // "context: <errno description>" or just the context.
  std::string ToString() const;

 private:
  Status(Code code, std::string msg, int err) : code_(code), msg_(std::move(msg)), err_(err) {}

  Code code_ = Code::kOk;
  std::string msg_;
  int err_ = 0;
};

// The description of `err` ("No such file or directory"); thread-safe,
// unlike strerror.
const char* ErrnoText(int err);

}  // namespace detourfs
