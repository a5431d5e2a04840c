// UringTransport: FUSE requests through io_uring instead of /dev/fuse reads
// (Linux 6.14+, when /sys/module/fuse/parameters/enable_uring is on).
//
// Why: a request through /dev/fuse wakes a daemon thread on whichever CPU is
// idle, and the reply wakes the caller there again; on a small VM those
// cross-CPU wake-ups are most of a request's cost (docs/benchmarks.md).
// With io_uring the kernel hands a request to the queue of the CPU the caller
// runs on; that queue's threads are pinned to the same CPU, so the request
// and its reply are two context switches on one CPU.
//
// How, with libfuse 3.14 (which predates io_uring): the session gets custom
// io hooks. The /dev/fuse hooks pass everything through, except that they
// accept the kernel's io_uring and HANDLE_KILLPRIV_V2 offers in the INIT
// reply, and carry the kill marks of each request through libfuse
// (kill_suidgid.h; so requests are read from /dev/fuse whole, never
// spliced). The hooks are installed even when io_uring is off (`rings`
// false) or not offered. Ring threads then
// register one entry each and hand every request they get to libfuse as a
// buffer (fuse_session_process_buf), exactly as /dev/fuse would have
// delivered it; the reply libfuse writes is caught on the same thread and
// committed to the ring. FORGET and INTERRUPT still come through /dev/fuse.
// If the kernel does not offer io_uring or registration fails, requests stay
// on /dev/fuse and nothing else changes.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "detourfs/status.h"

namespace detourfs::fuseops {

class UringTransport {
 public:
  struct Options {
    bool rings = true;             // false: /dev/fuse only (the hooks still rewrite)
    unsigned threads_per_cpu = 2;  // a slow request does not hold up its CPU's queue
    size_t max_write = 1U << 20;   // the session's max_write: sizes the payload buffers
  };

  // Whether the running kernel lets FUSE servers use io_uring.
  static bool KernelEnabled();

  explicit UringTransport(Options options) : options_(options) {}
  UringTransport(const UringTransport&) = delete;
  UringTransport& operator=(const UringTransport&) = delete;
  ~UringTransport() { Stop(); }

  // Installs the hooks on a mounted session whose userdata is a FuseContext
  // pointing at this transport.
  Status Install(fuse_session* se);
  // Starts the ring threads, if `rings` (after fuse_daemonize: threads do not survive a
  // fork); they register once the INIT reply has accepted io_uring.
  Status Start();
  // Wakes and joins the ring threads. Idempotent.
  void Stop();

  bool rings() const { return options_.rings; }
  // Requests served through the rings so far (0: all went through /dev/fuse).
  uint64_t served() const { return served_.load(std::memory_order_relaxed); }

  // The custom io hooks; userdata is the session's FuseContext.
  static ssize_t Read(int fd, void* buf, size_t len, void* userdata);
  static ssize_t Writev(int fd, iovec* iov, int count, void* userdata);
  static ssize_t SpliceReceive(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                               unsigned flags, void* userdata);
  static ssize_t SpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                            unsigned flags, void* userdata);

  struct Entry;  // one registered request buffer (uring_transport.cc)

 private:
  void NoteInitRequest(const void* buf, size_t len);
  void AcceptInInitReply(iovec* iov, int count);
  void InitReplied();
  void RingThread(unsigned qid, int wake_fd);
  uint64_t Serve(Entry* e);  // returns the commit id
  bool WaitForInit();

  Options options_;
  fuse_session* se_ = nullptr;
  int fd_ = -1;
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<bool> kernel_offers_{false};
  std::atomic<bool> kernel_offers_killpriv_v2_{false};
  std::atomic<bool> kernel_offers_setxattr_ext_{false};
  // FUSE_SETXATTR_EXT accepted: SETXATTR requests come extended.
  std::atomic<bool> setxattr_ext_{false};
  std::atomic<bool> accepted_{false};
  std::atomic<uint64_t> served_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  bool init_done_ = false;     // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  std::vector<int> wake_fds_;  // one eventfd per ring thread, guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace detourfs::fuseops
