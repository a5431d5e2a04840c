// Clang thread-safety annotations (-Wthread-safety), as leveldb's
// port/thread_annotations.h: they state which lock guards which data and
// which locks a function needs, and clang checks it. Other compilers see
// nothing. The lock order is written in docs/architecture.md ("Locks").
#pragma once

#if defined(__clang__)
#define DETOURFS_TSA(x) __attribute__((x))
#else
#define DETOURFS_TSA(x)
#endif

#define CAPABILITY(x) DETOURFS_TSA(capability(x))
#define SCOPED_CAPABILITY DETOURFS_TSA(scoped_lockable)
#define GUARDED_BY(x) DETOURFS_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) DETOURFS_TSA(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) DETOURFS_TSA(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) DETOURFS_TSA(acquired_after(__VA_ARGS__))
#define REQUIRES(...) DETOURFS_TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) DETOURFS_TSA(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) DETOURFS_TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) DETOURFS_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) DETOURFS_TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) DETOURFS_TSA(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) DETOURFS_TSA(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) DETOURFS_TSA(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) DETOURFS_TSA(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) DETOURFS_TSA(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) DETOURFS_TSA(assert_shared_capability(x))
#define RETURN_CAPABILITY(x) DETOURFS_TSA(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS DETOURFS_TSA(no_thread_safety_analysis)
