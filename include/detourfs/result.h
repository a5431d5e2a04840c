// Result<T>: a value or a positive errno, with no allocation. The error type of
// the request path (sys, store, inodes, overlay); the FUSE adapters turn it into
// fuse_reply_err. The backing filesystem's errno passes through unchanged.
#pragma once

#include <cassert>
#include <utility>

namespace detourfs {

// T must be default-constructible (it is stored in place, not in an optional:
// GCC 12 reports false maybe-uninitialized warnings through std::optional).

// A positive errno value, wrapped so that it cannot be confused with a count.
struct Errno {
  int value;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}                   // NOLINT: implicit by design
  Result(Errno err) : err_(err.value) { assert(err.value > 0); }  // NOLINT

  bool ok() const { return err_ == 0; }
  int error() const { return err_; }

  T& operator*() & { return value_; }
  const T& operator*() const& { return value_; }
  T&& operator*() && { return std::move(value_); }
  T* operator->() { return &value_; }
  const T* operator->() const { return &value_; }

 private:
  T value_{};
  int err_ = 0;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Errno err) : err_(err.value) { assert(err.value > 0); }  // NOLINT

  bool ok() const { return err_ == 0; }
  int error() const { return err_; }

 private:
  int err_ = 0;
};

// Returns early from the enclosing function with the error of `expr` when it
// failed. The enclosing function must return some Result<>.
#define DETOURFS_TRY(expr)                                  \
  do {                                                      \
    if (auto detourfs_try_r = (expr); !detourfs_try_r.ok()) \
      return ::detourfs::Errno{detourfs_try_r.error()};     \
  } while (0)

}  // namespace detourfs
