#include "common/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace volguard {

Result<DirLock> DirLock::acquire(const std::string& dir, const std::string& what) {
  const std::string path = dir + "/volguard.lock";
  // O_NOFOLLOW: a symlink planted under that name must not make us truncate another file.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status(Code::kFailedPrecondition, "data_dir_unusable",
                  what + ": cannot open " + path + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder;
    char buf[32] = {};
    if (ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0); n > 0) {
      holder.assign(buf, static_cast<size_t>(n));
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    }
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Status(Code::kFailedPrecondition, "data_dir_in_use",
                    what + ": " + dir + " is in use by another volguard server" +
                        (holder.empty() ? std::string() : " (pid " + holder + ")") +
                        "; one server per data directory (lock " + path + ")");
    }
    return Status(Code::kFailedPrecondition, "data_dir_unusable",
                  what + ": cannot lock " + path + ": " + std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    ::close(fd);
    return Status(Code::kFailedPrecondition, "data_dir_unusable",
                  what + ": cannot write " + path + ": " + std::strerror(err));
  }
  return DirLock(fd);
}

DirLock::DirLock(DirLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

DirLock& DirLock::operator=(DirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last fd releases the flock
}

}  // namespace volguard
