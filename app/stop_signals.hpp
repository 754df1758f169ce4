#pragma once
// SIGINT/SIGTERM handling shared by the long-running subcommands (serve,
// consume): blocked in every thread, taken by the main thread with sigwait.

#include <spdlog/spdlog.h>

#include <csignal>
#include <string_view>

namespace flashsale::app {

// Blocks SIGINT/SIGTERM in every thread started after this (workers never
// take them); WaitForStopSignal() takes them on the main thread.
inline sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return signals;
}

inline void WaitForStopSignal(const sigset_t& signals, std::string_view what) {
  siginfo_t info{};
  while (sigwaitinfo(&signals, &info) < 0) {
  }
  spdlog::warn("received {} from pid {}: stopping ({})",
               info.si_signo == SIGINT ? "SIGINT" : "SIGTERM", info.si_pid, what);
}

}  // namespace flashsale::app
