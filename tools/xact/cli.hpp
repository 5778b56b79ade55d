// What the commands of the `xact` tool share: exit codes, the two kinds of failure, the
// per-command option parsing with --help, text formatting, and opening a decision log.
//
// Every command writes its result to stdout and every error to stderr. A command reports a
// failure by throwing: UsageFailure (the command line is wrong: exit 2), anything else (the
// command ran and failed: exit 1); main() prints the message, prefixed by the command.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options.hpp>

#include <xact/config/config.hpp>
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>

namespace xact::cli {

namespace po = boost::program_options;

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   ///< the command ran and failed
inline constexpr int kExitUsage = 2;     ///< the command line is wrong; nothing was done
inline constexpr int kExitWorkOwed = 3;  ///< recover: ran, but work is still owed
inline constexpr int kExitFound = 3;     ///< sheets orphans, outbox dead: ran, and found some

/// The command line cannot be run: main() adds a pointer to the command's --help.
class UsageFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The command ran and failed for a reason the message explains.
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What --help says about a command.
struct CommandInfo {
  std::string name;      ///< "log dump"
  std::string synopsis;  ///< "<dir>"
  std::string brief;     ///< a few words, for the list of commands
  std::string summary;   ///< what it does, first in its --help
  std::string details;   ///< paragraphs for the command's own --help
};

/// A required positional argument: its name in messages ("<dir>") and what it is ("the
/// decision log directory").
struct Positional {
  std::string name;
  std::string what;
};

/// A command's options: --help always, its required positional arguments (by default one
/// <dir>, the decision log directory), and what the command adds to options().
class CommandLine {
 public:
  explicit CommandLine(CommandInfo info, std::vector<Positional> positionals = {
                                             {"<dir>", "the decision log directory"}});
  po::options_description& options() { return visible_; }
  /// Parses `args` (what follows the command's words). False when --help was asked: the help
  /// is printed to stdout and the command should return kExitOk. Throws UsageFailure.
  bool parse(const std::vector<std::string>& args);
  const po::variables_map& values() const { return values_; }
  /// The log directory (the first positional argument).
  const std::string& dir() const { return arguments_.at(0); }
  /// The `i`th positional argument, in the order the constructor named them.
  const std::string& argument(std::size_t i) const { return arguments_.at(i); }
  void print_help() const;

 private:
  CommandInfo info_;
  std::vector<Positional> positionals_;
  po::options_description visible_{"Options"};
  po::variables_map values_;
  std::vector<std::string> arguments_;
};

/// Microseconds since the Unix epoch as ISO-8601 UTC: "2024-11-22T09:15:02.123456Z".
std::string iso_time(std::int64_t micros);
/// `text` with control characters and backslashes escaped (\t, \n, \xNN, \\), so one value is
/// one line and one tab-separated field whatever it holds.
std::string printable(std::string_view text);
/// Parses 56 hex digits into a gtrid; UsageFailure naming `option` otherwise.
Gtrid parse_gtrid(std::string_view hex, std::string_view option);

/// DecisionLog::inspect, once more after a failure: a segment the owner rotated away between
/// listing the directory and reading it makes a read of a live log fail once.
DecisionLog::Inspection inspect_log(io::Env& env, const std::string& dir);

/// For commands that open the log: refuses a damaged log (damage in the middle of the newest
/// segment, a missing segment, a damaged header, a preallocated segment cut short) unless
/// `tolerate`, naming the file, the offset and the way out.
void check_damage(const DecisionLog::Inspection& inspection, const std::string& dir, bool tolerate);

/// Opens the decision log in `dir`, which must already be one (inspect it first: open would
/// create a new log in an empty directory). When another process owns it, the Failure names
/// the holder and says to stop it or to `do_it_there` from inside that process. `read_only`
/// (dry runs): takes the lock but writes nothing, not even a new epoch.
std::unique_ptr<DecisionLog> open_log(io::Env& env, const std::string& dir, bool tolerate,
                                      std::string_view do_it_there, bool read_only = false);

/// The configuration file named by --config; a file that cannot be read or parsed is a Failure
/// with the parser's message (which names the file, line and key).
config::Config read_config(const po::variables_map& values);

/// Routes xact's own diagnostics to stderr as "xact: <level>: <message>": errors always,
/// everything from info up when `verbose`.
void route_library_log(bool verbose);

// The commands. Each takes the arguments after its words and returns the exit code.
extern const CommandInfo kLogDumpInfo;
extern const CommandInfo kLogPendingInfo;
extern const CommandInfo kHeuristicsListInfo;
extern const CommandInfo kHeuristicsForgetInfo;
extern const CommandInfo kRecoverInfo;
extern const CommandInfo kStorageVerifyInfo;
extern const CommandInfo kStorageDumpInfo;
extern const CommandInfo kStoragePackInfo;
extern const CommandInfo kStorageBackupInfo;
int run_log_dump(const std::vector<std::string>& args);
int run_log_pending(const std::vector<std::string>& args);
int run_heuristics_list(const std::vector<std::string>& args);
int run_heuristics_forget(const std::vector<std::string>& args);
int run_recover(const std::vector<std::string>& args);
/// `xact recover --config FILE ...` (recover_config.cpp); run_recover hands over to it.
extern const CommandInfo kRecoverConfigInfo;
bool wants_config(const std::vector<std::string>& args);
int run_recover_config(const std::vector<std::string>& args);
/// `xact outbox dead|requeue|drop --config FILE --sql NAME` (outbox_commands.cpp).
extern const CommandInfo kOutboxDeadInfo;
extern const CommandInfo kOutboxRequeueInfo;
extern const CommandInfo kOutboxDropInfo;
int run_outbox_dead(const std::vector<std::string>& args);
int run_outbox_requeue(const std::vector<std::string>& args);
int run_outbox_drop(const std::vector<std::string>& args);
/// `xact sheets orphans --config FILE` (sheets_commands.cpp).
extern const CommandInfo kSheetsOrphansInfo;
int run_sheets_orphans(const std::vector<std::string>& args);
int run_storage_verify(const std::vector<std::string>& args);
int run_storage_dump(const std::vector<std::string>& args);
int run_storage_pack(const std::vector<std::string>& args);
int run_storage_backup(const std::vector<std::string>& args);
// `xact databases check|backup|pack --config FILE` (databases_commands.cpp).
extern const CommandInfo kDatabasesCheckInfo;
extern const CommandInfo kDatabasesBackupInfo;
extern const CommandInfo kDatabasesPackInfo;
int run_databases_check(const std::vector<std::string>& args);
int run_databases_backup(const std::vector<std::string>& args);
int run_databases_pack(const std::vector<std::string>& args);
/// --days N of the pack commands: N, range-checked (UsageFailure naming the range).
std::int64_t parse_days(const std::string& text);

}  // namespace xact::cli
