// UringTransport: the session's custom io hooks, and, with --io-uring, FUSE
// requests through io_uring instead of /dev/fuse reads (Linux 6.14+, when
// /sys/module/fuse/parameters/enable_uring is on).
//
// Why rings: a request through /dev/fuse wakes a daemon thread on whichever
// CPU is idle, and the reply wakes the caller there again; on a small VM
// those cross-CPU wake-ups are most of a request's cost (docs/benchmarks.md).
// With io_uring the kernel hands a request to the queue of the CPU the caller
// runs on; that queue's threads are pinned to the same CPU, so the request
// and its reply are two context switches on one CPU. Rings are opt-in: the
// kernel documents the interface as still changing, and the ABI is declared
// here (uring_abi.h) because libfuse 3.14 predates it.
//
// How, with libfuse 3.14: the session gets custom io hooks, always. The
// /dev/fuse hooks pass everything through, except that they accept the
// kernel's HANDLE_KILLPRIV_V2 and SETXATTR_EXT offers (and io_uring, with
// `rings`) in the INIT reply, and carry the kill marks of each request
// through libfuse (kill_suidgid.h; so requests are read from /dev/fuse
// whole, never spliced). Ring threads register entries (uring_queues.h says
// which thread serves which queue) and hand every request they get to
// libfuse as a buffer (fuse_session_process_buf), exactly as /dev/fuse would
// have delivered it. The reply libfuse writes is caught on the same thread
// and committed to the ring at once, so a commit the kernel refuses is
// returned to libfuse's reply call as an error, as a failed /dev/fuse write
// is. A request that by protocol has no reply (FORGET, INTERRUPT) hands its
// entry back with an empty success.
//
// Failures: once every queue has an entry the kernel queues requests to the
// rings only, so a ring entry lost while the connection lives (a commit
// refused, a submit error, an unexpected completion) would leave callers on
// that queue waiting forever. The transport then ends the session instead:
// it logs the cause, makes fuse_session_loop_mt return, and failure() says
// why (the daemon exits non-zero; unmounting and closing the device ends
// every request still queued). An entry that cannot be registered at start
// is only a warning: the kernel keeps requests on /dev/fuse until every
// queue has an entry.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "detourfs/status.h"
#include "detourfs/unique_fd.h"
#include "fuse/uring_queues.h"

namespace detourfs::fuseops {

class UringTransport {
 public:
  struct Options {
    bool rings = false;            // serve through io_uring (--io-uring); false: /dev/fuse only
    bool sched_idle = false;       // ring threads as SCHED_IDLE (--io-uring-sched-idle)
    unsigned threads_per_cpu = 2;  // a slow request does not hold up its CPU's queue
    size_t max_write = 1U << 20;   // the session's max_write: sizes the payload buffers
    // Test hook (DETOURFS_TEST_URING_FAIL_OPCODE): the first request with
    // this opcode served through a ring loses its entry, as a failed commit
    // would. 0: off.
    uint32_t fail_opcode = 0;
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
  // Starts the ring threads, if `rings`; they register once the INIT reply
  // has accepted io_uring. Call it after fuse_daemonize (threads do not
  // survive a fork), with libfuse's signal handlers installed, on the thread
  // that then runs fuse_session_loop_mt: a failure wakes that thread with
  // SIGTERM to end the loop.
  Status Start();
  // Wakes and joins the ring threads; requests still queued to the rings
  // end when the device is closed. Call it after fuse_session_unmount, so
  // the rings serve until the mount is gone. Idempotent.
  void Stop();

  bool rings() const { return options_.rings; }
  // Requests served through the rings so far (0: all went through /dev/fuse).
  uint64_t served() const { return served_.load(std::memory_order_relaxed); }
  // Why the rings ended the session (OK if they did not).
  Status failure() const;

  // The custom io hooks; userdata is the session's FuseContext.
  static ssize_t Read(int fd, void* buf, size_t len, void* userdata);
  static ssize_t Writev(int fd, iovec* iov, int count, void* userdata);
  static ssize_t SpliceReceive(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                               unsigned flags, void* userdata);
  static ssize_t SpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                            unsigned flags, void* userdata);

  struct Entry;  // one registered request buffer (uring_transport.cc)
  class Ring;    // one ring thread's io_uring and entries (uring_transport.cc)

 private:
  void NoteInitRequest(const void* buf, size_t len);
  void AcceptInInitReply(iovec* iov, int count);
  void InitReplied();
  void RingThread(const RingThreadPlan& plan, int wake_fd);
  void Serve(Ring* ring, Entry* e);
  // Commits the reply stored in `e`: 0, or the errno the kernel (or the
  // submit) refused it with, after which the entry is lost.
  int Commit(Entry* e);
  bool WaitForInit();
  // Whether the FUSE connection is gone (aborted, or unmounted).
  bool ConnectionGone() const;
  // Records why the rings cannot go on and ends the session loop.
  void Fail(const Status& why);
  // After Fail: keeps waking the loop's thread until Stop() (a wake-up that
  // lands just before the loop waits is lost).
  void WakeLoopUntilStopped();

  Options options_;
  fuse_session* se_ = nullptr;
  int fd_ = -1;   // the session's /dev/fuse fd (libfuse's; closed on unmount)
  UniqueFd dev_;  // our duplicate, registered with every ring
  pthread_t loop_thread_{};
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<bool> kernel_offers_{false};
  std::atomic<bool> kernel_offers_killpriv_v2_{false};
  std::atomic<bool> kernel_offers_setxattr_ext_{false};
  // FUSE_SETXATTR_EXT accepted: SETXATTR requests come extended.
  std::atomic<bool> setxattr_ext_{false};
  std::atomic<bool> accepted_{false};
  std::atomic<bool> fail_hook_fired_{false};
  std::atomic<bool> register_warned_{false};
  std::atomic<uint64_t> served_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool init_done_ = false;     // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  Status failure_;             // guarded by mu_
  std::vector<int> wake_fds_;  // one eventfd per ring thread, guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace detourfs::fuseops
