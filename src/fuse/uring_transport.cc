// UringTransport: see uring_transport.h for why and how.
#include "fuse/uring_transport.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "fuse/fuse_context.h"
#include "fuse/kill_suidgid.h"
#include "fuse/uring_abi.h"

namespace detourfs::fuseops {
namespace abi = uring_abi;

namespace {

constexpr size_t kPage = 4096;
// Room before the payload buffer: a request is rebuilt there as libfuse
// expects it (fuse_in_header, the opcode's argument, then the payload in
// place), so large writes are not copied again.
constexpr size_t kPrefix = kPage;
static_assert(kPrefix >= sizeof(fuse_in_header) + abi::kOpInSize);

// The highest CPU number the kernel may ever use, plus one: the kernel keeps
// a queue per possible CPU and serves through rings only once each has an entry.
unsigned PossibleCpus() {
  const unsigned fallback = std::max(1U, std::thread::hardware_concurrency());
  std::ifstream in("/sys/devices/system/cpu/possible");  // e.g. "0-1"
  std::string line;
  if (!std::getline(in, line) || line.empty()) return fallback;
  const size_t at = line.find_last_of("-,");
  const std::string last = at == std::string::npos ? line : line.substr(at + 1);
  unsigned cpu = 0;
  const auto [end, ec] = std::from_chars(last.data(), last.data() + last.size(), cpu);
  if (ec != std::errc() || end == last.data() || cpu >= 4096) return fallback;
  return cpu + 1;
}

}  // namespace

// One registered request buffer, owned by one ring thread.
struct UringTransport::Entry {
  abi::ReqHeader* header = nullptr;  // page-aligned
  char* area = nullptr;              // kPrefix bytes, then the payload buffer
  size_t payload_size = 0;
  iovec iov[2]{};
  uint64_t unique = 0;  // of the request being served
  bool replied = false;

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
  ~Entry() {
    std::free(header);
    if (area != nullptr) ::munmap(area, kPrefix + payload_size);
  }

  // Stores an error reply to request `unique` for the commit.
  void StoreError(uint64_t unique, int error) {
    fuse_out_header out{};
    out.unique = unique;
    out.error = error;
    StoreReply(out, nullptr, 0);
  }

  // Stores a reply (fuse_out_header, then its arguments) for the commit.
  void StoreReply(const fuse_out_header& out, const char* args, size_t len) {
    fuse_out_header h = out;
    if (len > payload_size) {
      spdlog::error("io_uring: reply of {} bytes to request {} exceeds the {}-byte buffer", len,
                    out.unique, payload_size);
      h.error = -EIO;
      len = 0;
    }
    h.len = static_cast<uint32_t>(sizeof(h) + len);
    std::memcpy(header->in_out, &h, sizeof(h));
    if (len > 0 && args != nullptr && args != payload()) std::memmove(payload(), args, len);
    header->ent.payload_sz = static_cast<uint32_t>(len);
    replied = true;
  }
};

namespace {

// The entry whose request this thread is serving: replies written on this
// thread for that request go to the ring, not to /dev/fuse.
thread_local UringTransport::Entry* tls_serving = nullptr;

UringTransport* From(void* userdata) { return static_cast<FuseContext*>(userdata)->transport; }

// A cleared 128-byte SQE. The ring has more SQEs than this thread ever has
// commands in flight (an entry and the stop poll), so one is always free.
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

// Prepares the entry's next command: REGISTER (first) or COMMIT_AND_FETCH.
void PrepCommand(io_uring* ring, int fd, UringTransport::Entry* e, abi::Cmd cmd, unsigned qid,
                 uint64_t commit_id) {
  io_uring_sqe* sqe = GetSqe(ring);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fd;
  sqe->cmd_op = cmd;
  if (cmd == abi::kRegister) {
    sqe->addr = reinterpret_cast<uint64_t>(e->iov);
    sqe->len = 2;
  }
  io_uring_sqe_set_data(sqe, e);
  abi::CmdReq req{};
  req.qid = static_cast<uint16_t>(qid);
  req.commit_id = commit_id;
  std::memcpy(sqe->cmd, &req, sizeof(req));
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
  const unsigned cpus = PossibleCpus();
  std::lock_guard lock(mu_);
  for (unsigned qid = 0; qid < cpus; ++qid) {
    for (unsigned t = 0; t < options_.threads_per_cpu; ++t) {
      const int efd = ::eventfd(0, EFD_CLOEXEC);
      if (efd < 0) return Status::FromErrno(errno, "cannot create an eventfd for io_uring");
      wake_fds_.push_back(efd);
      threads_.emplace_back([this, qid, efd] { RingThread(qid, efd); });
    }
  }
  spdlog::debug("io_uring: {} ring threads for {} CPUs, waiting for INIT", threads_.size(), cpus);
  return Status::OK();
}

void UringTransport::Stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (int efd : wake_fds_) {
      const uint64_t one = 1;
      if (::write(efd, &one, sizeof(one)) != sizeof(one)) {
        spdlog::warn("io_uring: cannot wake a ring thread: {}", ErrnoText(errno));
      }
    }
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (std::thread& t : threads) t.join();
  std::lock_guard lock(mu_);
  for (int efd : wake_fds_) ::close(efd);
  wake_fds_.clear();
}

bool UringTransport::WaitForInit() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return init_done_ || stopping_; });
  return !stopping_ && accepted_.load();
}

void UringTransport::RingThread(unsigned qid, int wake_fd) {
  // Pinned to its queue's CPU, so a request and its reply stay on the CPU
  // the caller runs on. A CPU outside this process's cpuset cannot be
  // pinned to; its queue is served from wherever the thread runs.
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(qid, &set);
  if (::sched_setaffinity(0, sizeof(set), &set) != 0) {
    spdlog::debug("io_uring: queue {} not pinned: {}", qid, ErrnoText(errno));
  }
  // SCHED_IDLE: a CPU running only this thread counts as idle when the
  // scheduler places the caller woken by our reply, so the caller stays on
  // this CPU instead of hopping to the other one (a cross-CPU wake-up per
  // request, the cost this transport exists to avoid). Measured: extraction
  // 6.9 s -> 4.2 s; under two CPU hogs ring threads are not starved (4.2 s,
  // /dev/fuse 9.5 s); docs/benchmarks.md.
  sched_param idle{};
  if (::sched_setscheduler(0, SCHED_IDLE, &idle) != 0) {
    spdlog::debug("io_uring: queue {} thread keeps its scheduling class: {}", qid,
                  ErrnoText(errno));
  }
  if (!WaitForInit()) return;

  io_uring ring;
  io_uring_params params{};
  params.flags = IORING_SETUP_SQE128;  // FUSE commands need the 80-byte command area
  if (int rc = io_uring_queue_init_params(4, &ring, &params); rc < 0) {
    spdlog::warn("io_uring: cannot set up a ring for queue {}: {}; requests stay on /dev/fuse", qid,
                 ErrnoText(-rc));
    return;
  }
  Entry e;
  const size_t payload = std::max<size_t>(8192, (options_.max_write + kPage - 1) / kPage * kPage);
  if (!e.Allocate(payload)) {
    spdlog::error("io_uring: cannot allocate a {}-byte ring buffer for queue {}", payload, qid);
    io_uring_queue_exit(&ring);
    return;
  }
  io_uring_sqe* poll = GetSqe(&ring);
  io_uring_prep_poll_add(poll, wake_fd, POLLIN);
  io_uring_sqe_set_data(poll, nullptr);  // nullptr: Stop() woke us
  PrepCommand(&ring, fd_, &e, abi::kRegister, qid, 0);
  abi::Cmd last = abi::kRegister;
  uint64_t commit_id = 0;
  bool stop = false;
  while (!stop) {
    const int rc = io_uring_submit_and_wait(&ring, 1);
    if (rc < 0 && rc != -EINTR) {
      spdlog::error("io_uring: queue {}: {}", qid, ErrnoText(-rc));
      break;
    }
    io_uring_cqe* cqe = nullptr;
    while (!stop && io_uring_peek_cqe(&ring, &cqe) == 0) {
      const bool is_entry = io_uring_cqe_get_data(cqe) != nullptr;
      const int res = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
      if (!is_entry) {
        stop = true;
      } else if (res == -EAGAIN || res == -EINTR) {
        PrepCommand(&ring, fd_, &e, last, qid, commit_id);
      } else if (res < 0) {
        // ENOTCONN/ECANCELED: the mount is going away.
        if (res != -ENOTCONN && res != -ECANCELED && res != -ECONNABORTED) {
          spdlog::warn("io_uring: queue {}: {} failed: {}; its requests stay on /dev/fuse", qid,
                       last == abi::kRegister ? "registering" : "committing", ErrnoText(-res));
        }
        stop = true;
      } else {
        commit_id = Serve(&e);
        last = abi::kCommitAndFetch;
        PrepCommand(&ring, fd_, &e, last, qid, commit_id);
      }
    }
  }
  (void)io_uring_submit(&ring);  // a reply prepared before a stop still goes out
  io_uring_queue_exit(&ring);
}

uint64_t UringTransport::Serve(Entry* e) {
  const abi::ReqHeader& h = *e->header;
  fuse_in_header in;
  std::memcpy(&in, h.in_out, sizeof(in));
  const uint64_t commit_id = h.ent.commit_id;
  const size_t payload = h.ent.payload_sz;
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
    return commit_id;
  }
  // Rebuild the request as /dev/fuse delivers it, just before the payload.
  const size_t op = in.len - sizeof(in) - payload;
  char* start = e->payload() - op - sizeof(in);
  std::memcpy(start, &in, sizeof(in));
  std::memcpy(start + sizeof(in), h.op_in, op);
  fuse_buf buf{};
  buf.mem = start;
  buf.size = CarryKillSuidgid(start, in.len, setxattr_ext_.load(std::memory_order_acquire));
  tls_serving = e;
  fuse_session_process_buf(se_, &buf);
  tls_serving = nullptr;
  if (!e->replied) {
    spdlog::error("io_uring: request {} (opcode {}) got no reply; answering EIO", in.unique,
                  in.opcode);
    e->StoreError(in.unique, -EIO);
  }
  return commit_id;
}

// ---- /dev/fuse hooks ----

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
  if (Entry* e = tls_serving; e != nullptr && out->unique == e->unique) {
    // A ring request's reply: gather its arguments into the payload buffer.
    size_t len = 0;
    for (int i = 1; i < count; ++i) len += iov[i].iov_len;
    if (len > e->payload_size) {
      e->StoreReply(*out, nullptr, len);  // reported as EIO
    } else {
      size_t at = 0;
      for (int i = 1; i < count; ++i) {
        std::memmove(e->payload() + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
      }
      e->StoreReply(*out, e->payload(), len);
    }
    return static_cast<ssize_t>(sizeof(*out) + len);
  }
  UringTransport* t = From(userdata);
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
                                   unsigned flags, void* /*userdata*/) {
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
    if (got >= sizeof(out) && got - sizeof(out) + room > e->payload_size) {
      room = e->payload_size - (got - sizeof(out));
      if (room == 0) break;
    }
    const ssize_t n = ::read(fdin, dst, room);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got < len) {
    spdlog::error("io_uring: reply to request {}: got {} of {} bytes from the pipe", out.unique,
                  got, len);
    e->StoreError(out.unique, -EIO);
    return static_cast<ssize_t>(len);
  }
  e->StoreReply(out, e->payload(), len - sizeof(out));
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
  if (!kernel_offers_) {
    spdlog::info("io_uring: not offered by the kernel, using /dev/fuse");
    return;
  }
  if ((init->flags & FUSE_INIT_EXT) == 0) return;
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
