// The kernel's FUSE-over-io-uring ABI (FUSE protocol 7.42, Linux 6.14+).
// Debian 12's <linux/fuse.h> (7.38) predates it, so the few names detourfs
// needs are declared here, laid out exactly as the kernel's uapi header.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>

namespace detourfs::fuseops::uring_abi {

// INIT flag (bit 41, i.e. bit 9 of flags2): the kernel offers, and the
// server accepts, requests through io_uring.
inline constexpr uint64_t kOverIoUring = 1ULL << 41;

inline constexpr size_t kInOutHeaderSize = 128;  // fuse_in_header / fuse_out_header
inline constexpr size_t kOpInSize = 128;         // the opcode's fixed argument

struct EntInOut {
  uint64_t flags;
  uint64_t commit_id;   // the request's unique, echoed in CmdReq on commit
  uint32_t payload_sz;  // bytes valid in the payload buffer, either way
  uint32_t padding;     // must be zero
  uint64_t reserved;
};

// iov[0] of a REGISTER: written by the kernel with a request, by us with the
// reply's fuse_out_header (payload_sz counts the reply's arguments).
struct ReqHeader {
  char in_out[kInOutHeaderSize];
  char op_in[kOpInSize];
  EntInOut ent;
};

enum Cmd : uint32_t {
  kRegister = 1,        // hand an entry to the kernel, wait for a request
  kCommitAndFetch = 2,  // reply to the entry's request, wait for the next
};

// The command area (80 bytes) of a 128-byte SQE.
struct CmdReq {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};

static_assert(sizeof(EntInOut) == 32);
static_assert(sizeof(ReqHeader) == 288);
static_assert(sizeof(CmdReq) == 24);
static_assert(sizeof(fuse_in_header) == 40 && sizeof(fuse_out_header) == 16);

}  // namespace detourfs::fuseops::uring_abi
