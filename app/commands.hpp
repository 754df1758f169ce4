#pragma once
// The subcommands of `flashsale` (SPEC §3). Each returns the process exit code.

#include <string>

#include "config.hpp"

namespace flashsale::app {

int RunServe(const Config& config);
int RunConsume(const Config& config);
int RunSeed(const Config& config, const std::string& file, bool force);
int RunAudit(const Config& config, bool repair);

// Refuses a second server on one database file: serve holds an exclusive
// lock on "<db>.lock" for its lifetime (released by the kernel on kill -9).
// Returns the lock's fd, or -1 when another process holds it.
int TryLockDatabase(const std::string& sqlite_path);

// Distributed mode is configured by --redis and --kafka together.
// Returns an error message naming what is missing or unsupported, or "".
std::string CheckBackendSelection(const Config& config);

}  // namespace flashsale::app
