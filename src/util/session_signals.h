// SessionSignalsBlocked: while it lives, the calling thread blocks the
// signals that end the FUSE session (SIGTERM, SIGINT, SIGHUP, SIGQUIT).
// Threads started meanwhile inherit the mask, so those signals reach the
// loop's thread, which must wake from its wait on them (as libfuse's own
// workers block them).
#pragma once

#include <signal.h>

namespace detourfs {

class SessionSignalsBlocked {
 public:
  SessionSignalsBlocked() {
    sigset_t block;
    sigemptyset(&block);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&block, sig);
    (void)::pthread_sigmask(SIG_BLOCK, &block, &old_);
  }
  ~SessionSignalsBlocked() { (void)::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SessionSignalsBlocked(const SessionSignalsBlocked&) = delete;
  SessionSignalsBlocked& operator=(const SessionSignalsBlocked&) = delete;

 private:
  sigset_t old_{};
};

}  // namespace detourfs
