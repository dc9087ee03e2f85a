// One process per data directory. Two servers on one data dir would share the SQLite file and
// append to one audit chain, which then reads as tampered forever: the second must not start.
#pragma once

#include <string>
#include <utility>

#include "common/fd.h"
#include "common/status.h"

namespace volguard {

// An exclusive flock(2) on "<dir>/volguard.lock", held for the object's life (and released by
// the kernel if the process dies, so a crash never leaves a stale lock). The file holds the
// holder's pid, for the refusal's message only: the lock decides, not the file's content.
class DirLock {
 public:
  // FAILED_PRECONDITION `data_dir_in_use` naming the pid that holds it.
  [[nodiscard]] static Result<DirLock> acquire(const std::string& dir, const std::string& what);

  DirLock(DirLock&&) noexcept = default;
  DirLock& operator=(DirLock&&) noexcept = default;

 private:
  explicit DirLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;  // closing the last fd releases the flock
};

}  // namespace volguard
