// Which ring thread serves which FUSE-over-io_uring queue: pure logic, so the
// plan for a 64-CPU VM can be tested on any machine.
//
// The kernel keeps one queue per *possible* CPU (qid = CPU number) and hands
// requests to the queue of the CPU the caller runs on, but only once every
// queue holds an entry. A cloud VM may report 64 possible CPUs with 2 online,
// and a container may be allowed 2 of 64 online CPUs: threads are started for
// the CPUs this process can run on (`threads_per_cpu` each, pinned there),
// and every other queue gets one entry from one of those threads, so the
// rings still come up and a request from such a CPU (hot-plugged, or a
// process outside our cpuset) is still served.
#pragma once

#include <string_view>
#include <vector>

namespace detourfs::fuseops {

// The CPUs in a sysfs CPU list ("0-3,8,10-11\n"), ascending; empty when the
// text is malformed or names a CPU >= kMaxCpus.
inline constexpr unsigned kMaxCpus = 4096;
std::vector<unsigned> ParseCpuList(std::string_view text);

struct RingThreadPlan {
  unsigned cpu = 0;              // the CPU the thread is pinned to
  std::vector<unsigned> queues;  // its own CPU's queue first, then any unserved ones
};

// The ring threads for `queues` queues (qids 0..queues-1) served from
// `cpus` (CPUs this process runs on; those >= `queues` are ignored; none
// left: CPU 0). Each CPU gets `threads_per_cpu` threads (at least 1), each
// with an entry on that CPU's queue; the other queues are dealt out one
// entry each, round robin over all threads.
std::vector<RingThreadPlan> PlanRingThreads(unsigned queues, const std::vector<unsigned>& cpus,
                                            unsigned threads_per_cpu);

}  // namespace detourfs::fuseops
