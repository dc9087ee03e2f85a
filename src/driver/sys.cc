#include "driver/sys.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "common/fd.h"
#include "common/text.h"

namespace volguard::driver {

Status errno_status(Code code, std::string reason, const std::string& what, int err) {
  return Status(code, std::move(reason),
                what + ": " + std::error_code(err, std::generic_category()).message());
}

std::string join_argv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

namespace {

// A root daemon must not run whatever a caller's PATH points at.
constexpr const char* kToolDirs[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin"};

std::string find_tool(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  for (const char* dir : kToolDirs) {
    std::string p = std::string(dir) + "/" + name;
    struct stat st;
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) return p;
  }
  return "";
}

// Frees posix_spawn_file_actions_t on every path.
struct SpawnActions {
  posix_spawn_file_actions_t fa;
  SpawnActions() { posix_spawn_file_actions_init(&fa); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&fa); }
};

}  // namespace

Result<CommandOutput> run_process(const std::vector<std::string>& argv) {
  if (argv.empty()) return Status(Code::kInternal, "tool_failed", "empty command");
  const std::string path = find_tool(argv[0]);
  if (path.empty()) {
    return Status(Code::kUnavailable, "tool_missing",
                  "required tool \"" + argv[0] + "\" is not installed");
  }

  // O_CLOEXEC so that a concurrent spawn from another thread cannot inherit our pipe ends and
  // keep them open (which would stall our read until that other child exits).
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return errno_status(Code::kInternal, "tool_failed", "pipe", errno);
  }
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return errno_status(Code::kInternal, "tool_failed", "pipe", errno);
  }
  UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]);

  SpawnActions actions;
  posix_spawn_file_actions_addopen(&actions.fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions.fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions.fa, err_w.get(), 2);
  posix_spawn_file_actions_addclosefrom_np(&actions.fa, 3);

  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  char env_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char env_lc[] = "LC_ALL=C";
  char* envp[] = {env_path, env_lc, nullptr};

  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, path.c_str(), &actions.fa, nullptr, cargv.data(), envp);
  if (rc != 0) return errno_status(Code::kUnavailable, "tool_failed", "cannot run " + path, rc);
  out_w.reset();
  err_w.reset();

  CommandOutput result;
  // Read both pipes together: a tool that fills one while we block on the other would hang.
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_count = 2;
  char buf[4096];
  while (open_count > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;  // poll ignores negative fds
        --open_count;
      }
    }
  }

  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return errno_status(Code::kInternal, "tool_failed", "waitpid", errno);
  }
  result.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return result;
}

Result<std::string> run_command(const std::vector<std::string>& argv) {
  auto r = run_process(argv);
  if (!r) return r.status();
  if (r->exit_code != 0) {
    const std::string detail(trim_trailing_whitespace(r->err.empty() ? r->out : r->err));
    return Status(Code::kInternal, "tool_failed",
                  join_argv(argv) + " failed (exit " + std::to_string(r->exit_code) + ")" +
                      (detail.empty() ? "" : ": " + detail));
  }
  return std::move(r->out);
}

bool tool_available(const std::string& name) { return !find_tool(name).empty(); }

HostCheck check_host() {
  std::vector<std::string> missing;
  // CapEff in /proc/self/status: the capabilities in force, whoever the user is (root in a
  // container may lack CAP_SYS_ADMIN; a non-root user with it would do).
  bool sys_admin = false;
  if (std::ifstream status("/proc/self/status"); status) {
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("CapEff:", 0) != 0) continue;
      const uint64_t caps = std::strtoull(line.c_str() + 7, nullptr, 16);
      sys_admin = (caps >> 21) & 1;  // CAP_SYS_ADMIN
    }
  }
  if (!sys_admin) missing.push_back("CAP_SYS_ADMIN (run as root, e.g. with sudo)");
  if (UniqueFd fd(::open("/dev/loop-control", O_RDWR | O_CLOEXEC)); !fd) {
    const int err = errno;
    missing.push_back(err == ENOENT ? std::string("/dev/loop-control (load the loop module: modprobe loop)")
                                    : "/dev/loop-control (" + std::string(std::strerror(err)) + ")");
  }
  for (const char* tool : {"losetup", "mkfs.ext4", "resize2fs"}) {
    if (!tool_available(tool)) missing.push_back(std::string(tool) + " (util-linux / e2fsprogs)");
  }
  HostCheck check;
  for (const char* tool : {"mkfs.xfs", "xfs_growfs"}) {
    if (!tool_available(tool)) check.optional_missing.push_back(tool);
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    check.required = Status(Code::kFailedPrecondition, "insufficient_privileges",
                            "the local driver attaches loop devices and mounts filesystems; missing: " + list);
  }
  return check;
}

}  // namespace volguard::driver
