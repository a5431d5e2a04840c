// UringTransport: see uring_transport.h for why and how.
#include "fuse/uring_transport.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "fuse/fuse_context.h"
#include "fuse/kill_suidgid.h"
#include "fuse/uring_abi.h"
#include "sys/sys.h"
#include "util/session_signals.h"

namespace detourfs::fuseops {
namespace abi = uring_abi;

namespace {

constexpr size_t kPage = 4096;
// Room before the payload buffer: a WRITE is rebuilt there as libfuse
// expects it (fuse_in_header, the opcode's argument, then the payload in
// place), so large writes are not copied again.
constexpr size_t kPrefix = kPage;
static_assert(kPrefix >= sizeof(fuse_in_header) + abi::kOpInSize);

// Each ring's registered files: the /dev/fuse fd alone. Registered, the fd
// stays valid for the ring after libfuse closes the session's fd on unmount.
constexpr int kDevIndex = 0;

std::string ReadSysfs(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The number of queues the kernel keeps for a connection: one per possible CPU.
unsigned QueueCount() {
  const std::vector<unsigned> possible =
      ParseCpuList(ReadSysfs("/sys/devices/system/cpu/possible"));
  if (!possible.empty()) return static_cast<unsigned>(possible.size());
  return std::max(1U, std::thread::hardware_concurrency());
}

// The online CPUs this process may run on (its cpuset): where ring threads go.
std::vector<unsigned> ServingCpus() {
  const std::vector<unsigned> online = ParseCpuList(ReadSysfs("/sys/devices/system/cpu/online"));
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  // Fails only with more than CPU_SETSIZE CPUs: then every online CPU.
  const bool masked = ::sched_getaffinity(0, sizeof(allowed), &allowed) == 0;
  std::vector<unsigned> cpus;
  for (unsigned cpu : online) {
    if (!masked || (cpu < CPU_SETSIZE && CPU_ISSET(cpu, &allowed))) cpus.push_back(cpu);
  }
  return cpus;
}

// Errors that mean the connection is going away, not that a ring broke.
bool IsShutdownError(int err) {
  return err == ENOTCONN || err == ECONNABORTED || err == ECANCELED || err == ENODEV;
}

// Requests that by protocol get no reply.
bool HasNoReply(uint32_t opcode) {
  return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
         opcode == FUSE_NOTIFY_REPLY;
}

// How a hook tells libfuse that a reply did not reach the kernel: -1 and
// errno, as writev(2) on /dev/fuse would (libfuse reads errno right after).
// ENOENT, "the kernel no longer waits for this reply", is what /dev/fuse
// answers once the connection is gone; libfuse takes it quietly.
ssize_t ReplyFailed(int err) {
  errno = IsShutdownError(err) ? ENOENT : err;
  return -1;
}

// Whether a commit's error means the kernel refused the reply. An error of
// the connection going away does not say: the commit may have been taken
// and only its fetch cancelled. Such a reply counts as delivered, so no
// lookup reference or file handle the kernel may hold is given up (the
// connection's end drops them all anyway).
bool Refused(int commit_error) { return commit_error != 0 && !IsShutdownError(commit_error); }

}  // namespace

// One registered request buffer, owned by one ring thread.
struct UringTransport::Entry {
  Ring* ring = nullptr;
  unsigned qid = 0;
  abi::ReqHeader* header = nullptr;  // page-aligned
  char* area = nullptr;              // kPrefix bytes, then the payload buffer
  size_t payload_size = 0;
  iovec iov[2]{};
  abi::Cmd last = abi::kRegister;  // the command in flight
  uint64_t commit_id = 0;          // of the request being served
  uint64_t unique = 0;             // of the request being served
  bool replied = false;            // its reply was committed (or refused)
  // Requests other than WRITE are rebuilt here, not in the buffers: once the
  // reply is committed the kernel may write the next request into them
  // while libfuse and the adapter are still returning.
  std::vector<char> copy;

  char* payload() const { return area + kPrefix; }

  bool Allocate(size_t size) {
    payload_size = size;
    header = static_cast<abi::ReqHeader*>(std::aligned_alloc(kPage, kPage));
    // Reserved, not committed: pages are touched only by large requests.
    void* p = ::mmap(nullptr, kPrefix + size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    area = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
    if (header == nullptr || area == nullptr) return false;
    std::memset(header, 0, sizeof(*header));
    iov[0] = {header, sizeof(*header)};
    iov[1] = {payload(), payload_size};
    return true;
  }
  Entry() = default;
  Entry(const Entry&) = delete;
  Entry& operator=(const Entry&) = delete;
  ~Entry() {
    std::free(header);
    if (area != nullptr) ::munmap(area, kPrefix + payload_size);
  }

  // Stores an error reply to request `unique` for the commit.
  void StoreError(uint64_t request, int error) {
    fuse_out_header out{};
    out.unique = request;
    out.error = error;
    StoreReply(out, nullptr, 0);
  }

  // Stores a reply (fuse_out_header, then its arguments) for the commit;
  // false (an EIO reply stored instead) if the arguments do not fit.
  bool StoreReply(const fuse_out_header& out, const char* args, size_t len) {
    fuse_out_header h = out;
    const bool fits = len <= payload_size;
    if (!fits) {
      spdlog::error("io_uring: reply of {} bytes to request {} exceeds the {}-byte buffer", len,
                    out.unique, payload_size);
      h.error = -EIO;
      len = 0;
    }
    h.len = static_cast<uint32_t>(sizeof(h) + len);
    std::memcpy(header->in_out, &h, sizeof(h));
    if (len > 0 && args != nullptr && args != payload()) std::memmove(payload(), args, len);
    header->ent.payload_sz = static_cast<uint32_t>(len);
    return fits;
  }
};

// One ring thread's io_uring and entries. The ring goes before the entries:
// the kernel may write into an entry's buffers until its command is done.
class UringTransport::Ring {
 public:
  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring() {
    if (initialized) io_uring_queue_exit(&ring);
  }

  io_uring ring{};
  bool initialized = false;
  std::vector<std::unique_ptr<Entry>> entries;  // destroyed after ~Ring's body
  size_t live = 0;                              // entries the kernel holds or this thread serves
  bool failed = false;                          // this thread ended the session (Fail)
};

namespace {

// The entry whose request this thread is serving: replies written on this
// thread for that request go to the ring, not to /dev/fuse.
thread_local UringTransport::Entry* tls_serving = nullptr;

UringTransport* From(void* userdata) { return static_cast<FuseContext*>(userdata)->transport; }

// A cleared 128-byte SQE. The ring has more SQEs than this thread ever has
// commands in flight (one per entry, and the stop poll), so one is free.
io_uring_sqe* GetSqe(io_uring* ring) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (sqe == nullptr) {
    (void)io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
    if (sqe == nullptr) std::abort();  // cannot happen: see above
  }
  std::memset(static_cast<void*>(sqe), 0, 2 * sizeof(*sqe));
  return sqe;
}

// Prepares the entry's next command: REGISTER (first) or COMMIT_AND_FETCH
// (the reply to `e->commit_id`, then wait for the next request).
void PrepCommand(io_uring* ring, UringTransport::Entry* e, abi::Cmd cmd) {
  io_uring_sqe* sqe = GetSqe(ring);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = kDevIndex;
  sqe->flags = IOSQE_FIXED_FILE;
  sqe->cmd_op = cmd;
  if (cmd == abi::kRegister) {
    sqe->addr = reinterpret_cast<uint64_t>(e->iov);
    sqe->len = 2;
  }
  io_uring_sqe_set_data(sqe, e);
  abi::CmdReq req{};
  req.qid = static_cast<uint16_t>(e->qid);
  req.commit_id = cmd == abi::kRegister ? 0 : e->commit_id;
  std::memcpy(sqe->cmd, &req, sizeof(req));
  e->last = cmd;
}

std::string QueueList(const std::vector<unsigned>& queues) {
  std::string out;
  for (unsigned q : queues) out += (out.empty() ? "" : ",") + std::to_string(q);
  return out;
}

}  // namespace

bool UringTransport::KernelEnabled() {
  std::ifstream in("/sys/module/fuse/parameters/enable_uring");
  char c = 0;
  return in.get(c) && c == 'Y';
}

Status UringTransport::Install(fuse_session* se) {
  se_ = se;
  fd_ = fuse_session_fd(se);
  fuse_custom_io io{};
  io.read = &UringTransport::Read;
  io.writev = &UringTransport::Writev;
  io.splice_receive = &UringTransport::SpliceReceive;
  io.splice_send = &UringTransport::SpliceSend;
  if (int rc = fuse_session_custom_io(se, &io, fd_); rc != 0) {
    return Status::FromErrno(-rc, "cannot install the io_uring transport");
  }
  return Status::OK();
}

Status UringTransport::Start() {
  if (!options_.rings) return Status::OK();
  loop_thread_ = ::pthread_self();
  const int dup = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return Status::FromErrno(errno, "io_uring: cannot duplicate the /dev/fuse fd");
  dev_.Reset(dup);
  const unsigned queues = QueueCount();
  const std::vector<unsigned> cpus = ServingCpus();
  const std::vector<RingThreadPlan> plan = PlanRingThreads(queues, cpus, options_.threads_per_cpu);
  Status status = Status::OK();
  size_t started = 0;
  {
    // The signals that end the session are for the loop's thread.
    SessionSignalsBlocked blocked;
    std::lock_guard lock(mu_);
    for (const RingThreadPlan& p : plan) {
      const int efd = ::eventfd(0, EFD_CLOEXEC);
      if (efd < 0) {
        status = Status::FromErrno(errno, "cannot create an eventfd for io_uring");
        break;
      }
      wake_fds_.push_back(efd);
      threads_.emplace_back([this, p, efd] { RingThread(p, efd); });
    }
    started = threads_.size();
  }
  spdlog::info("io_uring: {} ring threads on {} CPU(s) for {} queue(s), waiting for INIT", started,
               plan.size() / std::max(1U, options_.threads_per_cpu), queues);
  return status;
}

void UringTransport::Stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (int efd : wake_fds_) {
      const uint64_t one = 1;
      if (Result<void> r = sys::WriteAll(efd, &one, sizeof(one)); !r.ok()) {
        spdlog::warn("io_uring: cannot wake a ring thread: {}", ErrnoText(r.error()));
      }
    }
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (std::thread& t : threads) t.join();
  std::lock_guard lock(mu_);
  for (int efd : wake_fds_) ::close(efd);
  wake_fds_.clear();
  dev_.Reset();
}

Status UringTransport::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

bool UringTransport::WaitForInit() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return init_done_ || stopping_; });
  return !stopping_ && accepted_.load();
}

bool UringTransport::ConnectionGone() const {
  pollfd p{dev_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0;
}

void UringTransport::Fail(const Status& why) {
  {
    std::lock_guard lock(mu_);
    if (!failure_.ok()) {
      spdlog::error("{} (the session is already ending)", why.ToString());
      return;
    }
    failure_ = why;
  }
  spdlog::error(
      "{}; ending the session: the kernel keeps queueing requests to every ring, and those "
      "for this entry's queue could wait forever",
      why.ToString());
  // Not to kill it: libfuse's handler ends the session loop.
  (void)::pthread_kill(loop_thread_, SIGTERM);  // NOLINT(bugprone-bad-signal-to-kill-thread)
}

void UringTransport::WakeLoopUntilStopped() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    (void)::pthread_kill(loop_thread_, SIGTERM);  // NOLINT(bugprone-bad-signal-to-kill-thread)
    cv_.wait_for(lock, std::chrono::milliseconds(200));
  }
}

void UringTransport::RingThread(const RingThreadPlan& plan, int wake_fd) {
  const std::string queues = QueueList(plan.queues);
  // Pinned to its CPU, so a request and its reply stay on the CPU the caller
  // runs on.
  if (plan.cpu < CPU_SETSIZE) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(plan.cpu, &set);
    if (::sched_setaffinity(0, sizeof(set), &set) != 0) {
      spdlog::debug("io_uring: thread for CPU {} not pinned: {}", plan.cpu, ErrnoText(errno));
    }
  }
  // SCHED_IDLE (opt-in): a CPU running only this thread counts as idle when
  // the scheduler places the caller our reply wakes, so the caller stays on
  // its CPU (measured 6.9 s -> 4.2 s for an extraction, docs/caching.md). The
  // cost: under CPU-bound load these threads get a weight of 3 against
  // 1024, and every caller on this CPU waits for them.
  if (options_.sched_idle) {
    sched_param idle{};
    if (::sched_setscheduler(0, SCHED_IDLE, &idle) != 0) {
      spdlog::warn("io_uring: thread for CPU {} keeps its scheduling class: {}", plan.cpu,
                   ErrnoText(errno));
    }
  }
  if (!WaitForInit()) return;

  Ring r;
  io_uring_params params{};
  params.flags = IORING_SETUP_SQE128;  // FUSE commands need the 80-byte command area
  const auto depth = static_cast<unsigned>(plan.queues.size() + 1);
  if (int rc = io_uring_queue_init_params(depth, &r.ring, &params); rc < 0) {
    spdlog::warn(
        "io_uring: cannot set up a ring for queue(s) {}: {}; the kernel keeps requests on "
        "/dev/fuse until every queue has an entry",
        queues, ErrnoText(-rc));
    return;
  }
  r.initialized = true;
  const int dev = dev_.get();
  if (int rc = io_uring_register_files(&r.ring, &dev, 1); rc < 0) {
    spdlog::warn("io_uring: cannot register /dev/fuse with the ring for queue(s) {}: {}", queues,
                 ErrnoText(-rc));
    return;
  }
  const size_t payload = std::max<size_t>(8192, (options_.max_write + kPage - 1) / kPage * kPage);
  for (unsigned qid : plan.queues) {
    auto e = std::make_unique<Entry>();
    e->ring = &r;
    e->qid = qid;
    if (!e->Allocate(payload)) {
      spdlog::error("io_uring: cannot allocate a {}-byte ring buffer for queue {}", payload, qid);
      continue;
    }
    PrepCommand(&r.ring, e.get(), abi::kRegister);
    r.entries.push_back(std::move(e));
    ++r.live;
  }
  io_uring_sqe* poll = GetSqe(&r.ring);
  io_uring_prep_poll_add(poll, wake_fd, POLLIN);
  io_uring_sqe_set_data(poll, nullptr);  // nullptr: Stop() woke us

  bool stop = r.live == 0;
  while (!stop) {
    const int rc = io_uring_submit_and_wait(&r.ring, 1);
    if (rc < 0 && rc != -EINTR) {
      if (!ConnectionGone()) {
        r.failed = true;
        Fail(Status::FromErrno(-rc, "io_uring: queue(s) " + queues + ": cannot submit"));
      }
      break;
    }
    io_uring_cqe* cqe = nullptr;
    while (!stop && io_uring_peek_cqe(&r.ring, &cqe) == 0) {
      auto* e = static_cast<Entry*>(io_uring_cqe_get_data(cqe));
      const int res = cqe->res;
      io_uring_cqe_seen(&r.ring, cqe);
      if (e == nullptr) {
        stop = true;
      } else if (res == -EAGAIN || res == -EINTR) {
        PrepCommand(&r.ring, e, e->last);  // not taken: again (a commit keeps its reply)
      } else if (res < 0) {
        --r.live;
        if (IsShutdownError(-res) || ConnectionGone()) {
          spdlog::debug("io_uring: queue {}: {}", e->qid, ErrnoText(-res));
        } else if (e->last == abi::kRegister) {
          // Once: a kernel that refuses one entry usually refuses them all.
          const auto level =
              register_warned_.exchange(true) ? spdlog::level::debug : spdlog::level::warn;
          spdlog::log(level,
                      "io_uring: queue {}: cannot register a ring entry: {}; the kernel keeps "
                      "requests on /dev/fuse until every queue has an entry",
                      e->qid, ErrnoText(-res));
        } else {
          r.failed = true;
          Fail(Status::FromErrno(-res, "io_uring: queue " + std::to_string(e->qid) +
                                           ": the kernel refused the reply to request " +
                                           std::to_string(e->commit_id)));
        }
      } else {
        Serve(&r, e);
      }
      stop = stop || r.failed || r.live == 0;
    }
  }
  if (r.failed) WakeLoopUntilStopped();
}

void UringTransport::Serve(Ring* ring, Entry* e) {
  const abi::ReqHeader& h = *e->header;
  fuse_in_header in;
  std::memcpy(&in, h.in_out, sizeof(in));
  const size_t payload = h.ent.payload_sz;
  e->commit_id = h.ent.commit_id;
  e->unique = in.unique;
  e->replied = false;
  if (served_.fetch_add(1, std::memory_order_relaxed) == 0) {
    spdlog::info("io_uring: serving requests through per-CPU rings");
  }
  if (payload > e->payload_size || in.len < sizeof(in) + payload ||
      in.len - sizeof(in) - payload > abi::kOpInSize) {
    spdlog::error("io_uring: malformed request {} (opcode {}, length {}, payload {})", in.unique,
                  in.opcode, in.len, payload);
    e->StoreError(in.unique, -EIO);
    (void)Commit(e);
    return;
  }
  if (options_.fail_opcode != 0 && in.opcode == options_.fail_opcode &&
      !fail_hook_fired_.exchange(true)) {
    --ring->live;
    ring->failed = true;
    Fail(Status::IOError("io_uring: queue " + std::to_string(e->qid) + ": lost the entry serving " +
                         "request " + std::to_string(in.unique) + " (opcode " +
                         std::to_string(in.opcode) +
                         "), injected by DETOURFS_TEST_URING_FAIL_OPCODE"));
    return;
  }
  // Rebuild the request as /dev/fuse delivers it: a WRITE just before its
  // payload (the adapter is done with the data when it replies), anything
  // else in the entry's copy.
  const size_t op = in.len - sizeof(in) - payload;
  char* start = nullptr;
  if (in.opcode == FUSE_WRITE) {
    start = e->payload() - op - sizeof(in);
  } else {
    e->copy.resize(in.len);
    start = e->copy.data();
    std::memcpy(start + sizeof(in) + op, e->payload(), payload);
  }
  std::memcpy(start, &in, sizeof(in));
  std::memcpy(start + sizeof(in), h.op_in, op);
  fuse_buf buf{};
  buf.mem = start;
  buf.size = CarryKillSuidgid(start, in.len, setxattr_ext_.load(std::memory_order_acquire));
  tls_serving = e;
  fuse_session_process_buf(se_, &buf);
  tls_serving = nullptr;
  if (e->replied) return;
  if (HasNoReply(in.opcode)) {
    // Done without a reply, as through /dev/fuse; the entry still has to go
    // back to the kernel, with an empty success (no caller waits for it).
    fuse_out_header out{};
    out.unique = in.unique;
    (void)e->StoreReply(out, nullptr, 0);
  } else {
    spdlog::error("io_uring: request {} (opcode {}) got no reply; answering EIO", in.unique,
                  in.opcode);
    e->StoreError(in.unique, -EIO);
  }
  (void)Commit(e);
}

int UringTransport::Commit(Entry* e) {
  Ring* r = e->ring;
  e->replied = true;
  PrepCommand(&r->ring, e, abi::kCommitAndFetch);
  int rc = 0;
  do {
    rc = io_uring_submit(&r->ring);
  } while (rc == -EINTR);
  if (rc < 0) {
    --r->live;
    if (!ConnectionGone()) {
      r->failed = true;
      Fail(Status::FromErrno(-rc, "io_uring: queue " + std::to_string(e->qid) +
                                      ": cannot submit the reply to request " +
                                      std::to_string(e->commit_id)));
    }
    return -rc;
  }
  // The kernel refuses a commit at once (the completion is posted before
  // io_uring_enter returns); one it takes completes only with the next
  // request. The ring loop handles the completion; this only reports it.
  unsigned head = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(&r->ring, head, cqe) {
    if (io_uring_cqe_get_data(cqe) == e && cqe->res < 0 && cqe->res != -EAGAIN &&
        cqe->res != -EINTR) {
      return -cqe->res;
    }
  }
  return 0;
}

// ---- the hooks ----

ssize_t UringTransport::Read(int fd, void* buf, size_t len, void* userdata) {
  const ssize_t n = ::read(fd, buf, len);
  if (n > 0) {
    UringTransport* t = From(userdata);
    t->NoteInitRequest(buf, static_cast<size_t>(n));
    return static_cast<ssize_t>(CarryKillSuidgid(buf, static_cast<size_t>(n),
                                                 t->setxattr_ext_.load(std::memory_order_acquire)));
  }
  return n;
}

ssize_t UringTransport::Writev(int fd, iovec* iov, int count, void* userdata) {
  const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
  UringTransport* t = From(userdata);
  if (Entry* e = tls_serving; e != nullptr && !e->replied && out->unique == e->unique) {
    // A ring request's reply: gather its arguments into the payload buffer
    // and commit it now, so the caller learns whether the kernel took it.
    size_t len = 0;
    for (int i = 1; i < count; ++i) len += iov[i].iov_len;
    bool stored = false;
    if (len > e->payload_size) {
      stored = e->StoreReply(*out, nullptr, len);  // false: an EIO reply instead
    } else {
      size_t at = 0;
      for (int i = 1; i < count; ++i) {
        std::memmove(e->payload() + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
      }
      stored = e->StoreReply(*out, e->payload(), len);
    }
    if (int err = t->Commit(e); Refused(err)) return ReplyFailed(err);
    if (!stored) return ReplyFailed(EIO);
    return static_cast<ssize_t>(sizeof(*out) + len);
  }
  const bool init = out->unique != 0 && out->unique == t->init_unique_.load();
  if (init) t->AcceptInInitReply(iov, count);
  const ssize_t n = ::writev(fd, iov, count);
  if (init) t->InitReplied();
  return n;
}

ssize_t UringTransport::SpliceReceive(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                                      unsigned flags, void* /*userdata*/) {
  return ::splice(fdin, offin, fdout, offout, len, flags);
}

ssize_t UringTransport::SpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                                   unsigned flags, void* userdata) {
  Entry* e = tls_serving;
  if (e == nullptr || e->replied) return ::splice(fdin, offin, fdout, offout, len, flags);
  // A ring request's reply (libfuse splices read data): the pipe holds the
  // fuse_out_header, then the data. Drain it into the entry.
  fuse_out_header out{};
  size_t got = 0;
  while (got < len) {
    char* dst = got < sizeof(out) ? reinterpret_cast<char*>(&out) + got
                                  : e->payload() + (got - sizeof(out));
    size_t room = got < sizeof(out) ? sizeof(out) - got : len - got;
    if (got >= sizeof(out)) room = std::min(room, e->payload_size - (got - sizeof(out)));
    if (room == 0) break;  // more than the buffer holds
    Result<size_t> n = sys::Read(fdin, dst, room);
    if (!n.ok() || *n == 0) break;
    got += *n;
  }
  UringTransport* t = From(userdata);
  if (got < len) {
    // What is left stays in the pipe: failing makes libfuse replace the
    // pipe (fuse_ll_clear_pipe), so the next reply does not start with it.
    spdlog::error("io_uring: reply to request {}: got {} of {} bytes from the pipe; answering EIO",
                  e->unique, got, len);
    e->StoreError(e->unique, -EIO);
    (void)t->Commit(e);
    return ReplyFailed(EIO);
  }
  const bool stored = e->StoreReply(out, e->payload(), len - sizeof(out));
  if (int err = t->Commit(e); Refused(err)) return ReplyFailed(err);
  if (!stored) return ReplyFailed(EIO);
  return static_cast<ssize_t>(len);
}

void UringTransport::NoteInitRequest(const void* buf, size_t len) {
  if (len < sizeof(fuse_in_header) + sizeof(fuse_init_in)) return;
  fuse_in_header in;
  std::memcpy(&in, buf, sizeof(in));
  if (in.opcode != FUSE_INIT) return;
  fuse_init_in init;
  std::memcpy(&init, static_cast<const char*>(buf) + sizeof(in), sizeof(init));
  uint64_t flags = init.flags;
  if (flags & FUSE_INIT_EXT) flags |= static_cast<uint64_t>(init.flags2) << 32;
  kernel_offers_ = (flags & abi::kOverIoUring) != 0;
  kernel_offers_killpriv_v2_ = (flags & kHandleKillprivV2) != 0;
  kernel_offers_setxattr_ext_ = (flags & kSetxattrExt) != 0;
  init_unique_ = in.unique;
}

void UringTransport::AcceptInInitReply(iovec* iov, int count) {
  auto* out = static_cast<fuse_out_header*>(iov[0].iov_base);
  if (out->error != 0 || count < 2 ||
      iov[1].iov_len < offsetof(fuse_init_out, flags2) + sizeof(uint32_t)) {
    return;
  }
  auto* init = static_cast<fuse_init_out*>(iov[1].iov_base);
  // Setuid and setgid are cleared here, on the marks the hooks carry
  // through libfuse (kill_suidgid.h).
  if (kernel_offers_killpriv_v2_) init->flags |= kHandleKillprivV2;
  // ... and setgid on setting an ACL; SETXATTR then comes in the extended
  // layout, which the hooks turn back into the old one for libfuse.
  if (kernel_offers_setxattr_ext_) {
    init->flags |= kSetxattrExt;
    setxattr_ext_.store(true, std::memory_order_release);
  }
  if (!options_.rings) return;
  if (!kernel_offers_ || (init->flags & FUSE_INIT_EXT) == 0) {
    spdlog::warn(
        "io_uring: rings unavailable (the kernel did not offer them at INIT); serving "
        "through /dev/fuse");
    return;
  }
  init->flags2 |= static_cast<uint32_t>(abi::kOverIoUring >> 32);
  accepted_ = true;
}

void UringTransport::InitReplied() {
  {
    std::lock_guard lock(mu_);
    init_done_ = true;
  }
  cv_.notify_all();
}

}  // namespace detourfs::fuseops
