#include <xact/testing/crash_harness.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <xact/crash_point.hpp>

namespace xact::testing {

namespace {

[[noreturn]] void child_main(const std::function<int()>& child) {
  int code = 101;
  try {
    code = child();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crash harness child threw: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "crash harness child threw a non-std exception\n");
  }
  std::fflush(nullptr);
  ::_exit(code);
}

ChildRun wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
  }
  ChildRun run;
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    run.signal = WTERMSIG(status);
    run.killed = run.signal == SIGKILL;
  }
  return run;
}

pid_t fork_or_throw() {
  std::fflush(nullptr);  // no buffered output written twice
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  return pid;
}

}  // namespace

std::string ChildRun::describe() const {
  if (killed) return "killed by SIGKILL";
  if (signal != 0) return "ended by signal " + std::to_string(signal);
  return "exited with " + std::to_string(exit_code);
}

ChildRun run_in_child(const std::function<int()>& child, const std::string& crash_point,
                      unsigned hit) {
  const pid_t pid = fork_or_throw();
  if (pid == 0) {
    arm_crash_point(crash_point, hit);
    child_main(child);
  }
  return wait_for(pid);
}

ChildRun run_and_kill_after(const std::function<int()>& child,
                            std::chrono::microseconds kill_after) {
  const pid_t pid = fork_or_throw();
  if (pid == 0) {
    arm_crash_point({});
    child_main(child);
  }
  std::this_thread::sleep_for(kill_after);
  ::kill(pid, SIGKILL);
  return wait_for(pid);
}

ChildRun run_and_kill_after_report(const std::function<int(int report_fd)>& child,
                                   std::chrono::microseconds then) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  const pid_t pid = fork_or_throw();
  if (pid == 0) {
    ::close(fds[0]);
    arm_crash_point({});
    const int report = fds[1];
    child_main([&] { return child(report); });
  }
  ::close(fds[1]);
  char byte = 0;
  ssize_t n = 0;
  do {
    n = ::read(fds[0], &byte, 1);
  } while (n < 0 && errno == EINTR);
  ::close(fds[0]);
  if (n == 1) {  // reported; 0: it ended (or closed the pipe) without reporting
    std::this_thread::sleep_for(then);
    ::kill(pid, SIGKILL);
  }
  return wait_for(pid);
}

}  // namespace xact::testing
