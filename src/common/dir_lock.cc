#include "common/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/text.h"

namespace volguard {

Result<DirLock> DirLock::acquire(const std::string& dir, const std::string& what) {
  const std::string path = dir + "/volguard.lock";
  // O_NOFOLLOW: a symlink planted under that name must not make us truncate another file.
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) {
    return Status(Code::kFailedPrecondition, "data_dir_unusable",
                  what + ": cannot open " + path + ": " + std::strerror(errno));
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder;
    char buf[32] = {};
    if (ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0); n > 0) {
      holder = trim_trailing_whitespace(std::string_view(buf, static_cast<size_t>(n)));
    }
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
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    return Status(Code::kFailedPrecondition, "data_dir_unusable",
                  what + ": cannot write " + path + ": " + std::strerror(err));
  }
  return DirLock(std::move(fd));
}

}  // namespace volguard
