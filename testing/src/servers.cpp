#include <xact/testing/servers.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>

namespace xact::testing {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

bool under_ci() { return env_or_empty("CI") == "true"; }

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  static const unsigned salt = std::random_device{}() & 0xffff;
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter) + "_" +
         std::to_string(salt);
}

bool run_servers_script(const std::string& command) {
  const std::string script = env_or_empty("XACT_SERVERS_SCRIPT");
  const std::string dir = env_or_empty("XACT_SERVERS_DIR");
  if (script.empty() || dir.empty()) return false;
  const std::string cmd = "bash '" + script + "' " + command + " '" + dir + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace xact::testing
