#include "common/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace volguard {

Status file_error(const char* reason, const char* verb, const std::string& path, int err) {
  return Status(Code::kInvalidArgument, reason,
                std::string("cannot ") + verb + " " + path + ": " + std::strerror(err));
}

Result<UniqueFd> open_private_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return file_error("file_unreadable", "read", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return file_error("file_unreadable", "stat", path, errno);
  if ((st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status(Code::kFailedPrecondition, "secret_file_exposed",
                  path + ": mode " + mode +
                      " lets group or others read or write this secret (chmod 600 " + path + ")");
  }
  return fd;
}

}  // namespace volguard
