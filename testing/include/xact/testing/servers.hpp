// What the tests against real database servers share: whether a missing server is a failure
// (CI=true) or a skip, names no two tests running in parallel share, and the script that kills
// and restarts the servers (scripts/servers.sh, found through XACT_SERVERS_SCRIPT and
// XACT_SERVERS_DIR, which its env.sh sets). Thread-safe.
#pragma once

#include <string>

namespace xact::testing {

/// The value of environment variable `name`, empty when unset.
std::string env_or_empty(const char* name);

/// CI=true: an integration test whose server is missing fails instead of skipping, so that it
/// never passes by not running.
bool under_ci();

/// "<prefix>_<pid>_<n>_<random>": unique across the tests of this process and of processes
/// running in parallel (for tables and resource names on a shared server).
std::string unique_name(const std::string& prefix);

/// Runs `bash $XACT_SERVERS_SCRIPT <command> $XACT_SERVERS_DIR` (kill-pg, restart-pg,
/// kill-mysql, ...) with its output discarded; true when it succeeded, false when it failed or
/// either variable is unset.
bool run_servers_script(const std::string& command);

}  // namespace xact::testing
