// xact: the operator's command-line tool for a coordinator's decision log and for object
// storage files. It inspects a log, lists pending completions and heuristic outcomes, forgets
// heuristic outcomes, runs recovery, and verifies, dumps, packs and backs up a FileStorage
// file. See doc/cli.md.
//
// main() finds the command from its words ("log dump"), hands it the remaining arguments,
// and turns what it throws into a message on stderr and an exit code (cli.hpp).
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"

namespace {

using namespace xact::cli;

struct Command {
  const CommandInfo* info;
  int (*run)(const std::vector<std::string>&);
};

const Command kCommands[] = {
    {&kLogDumpInfo, &run_log_dump},
    {&kLogPendingInfo, &run_log_pending},
    {&kHeuristicsListInfo, &run_heuristics_list},
    {&kHeuristicsForgetInfo, &run_heuristics_forget},
    {&kRecoverInfo, &run_recover},
    {&kSheetsOrphansInfo, &run_sheets_orphans},
    {&kOutboxDeadInfo, &run_outbox_dead},
    {&kOutboxRequeueInfo, &run_outbox_requeue},
    {&kOutboxDropInfo, &run_outbox_drop},
    {&kStorageVerifyInfo, &run_storage_verify},
    {&kStorageDumpInfo, &run_storage_dump},
    {&kStoragePackInfo, &run_storage_pack},
    {&kStorageBackupInfo, &run_storage_backup},
    {&kDatabasesCheckInfo, &run_databases_check},
    {&kDatabasesBackupInfo, &run_databases_backup},
    {&kDatabasesPackInfo, &run_databases_pack},
};

bool is_help(std::string_view arg) { return arg == "--help" || arg == "-h"; }

std::string first_word(const std::string& name) { return name.substr(0, name.find(' ')); }

void print_usage(std::ostream& out, std::string_view group = {}) {
  out << "Usage: xact " << (group.empty() ? "<command>" : std::string(group) + " <command>")
      << " [<args>] [--help]\n\n";
  if (group.empty()) {
    out << "Inspects a coordinator's decision log, runs recovery, deals with heuristic\n"
           "outcomes, lists property sheet rows whose owner object is gone, lists, requeues\n"
           "and drops an outbox's dead messages, and verifies, dumps, packs and backs up\n"
           "object storage files.\n\n";
  }
  out << "Commands:\n";
  for (const auto& c : kCommands) {
    if (!group.empty() && first_word(c.info->name) != group) continue;
    // The command and its arguments, without the options ("storage backup <file> <dest>").
    const std::string& synopsis = c.info->synopsis;
    std::string head = c.info->name + " " + synopsis.substr(0, synopsis.find(" -"));
    head = head.substr(0, head.find(" ["));
    head.resize(std::max<std::size_t>(head.size() + 2, 30), ' ');
    out << "  " << head << c.info->brief << '\n';
  }
  out << "\nRun 'xact " << (group.empty() ? "<command>" : std::string(group) + " <command>")
      << " --help' for a command's arguments and options.\n";
  if (group.empty()) {
    out << "\nExit status: 0 success; 1 the command failed (the message says why); 2 wrong\n"
           "command line; 3 `recover` ran but work is still owed, `sheets orphans` found\n"
           "orphan rows, `outbox dead` found dead messages.\n";
  }
}

int usage_error(std::string_view who, const std::string& message, std::string_view help_for) {
  std::cerr << "xact" << (who.empty() ? "" : " ") << who << ": " << message << '\n'
            << "Run 'xact " << help_for << (help_for.empty() ? "" : " ") << "--help' for usage.\n";
  return kExitUsage;
}

int run_command(const Command& command, const std::vector<std::string>& args) {
  const std::string& name = command.info->name;
  try {
    return command.run(args);
  } catch (const UsageFailure& e) {
    return usage_error(name, e.what(), name);
  } catch (const std::exception& e) {
    std::cerr << "xact " << name << ": " << e.what() << '\n';
    return kExitFailure;
  }
}

// args[0] is a command's first word.
int dispatch(const std::vector<std::string>& args) {
  const std::string& word = args[0];
  std::vector<const Command*> group;
  for (const auto& c : kCommands) {
    if (c.info->name == word) return run_command(c, {args.begin() + 1, args.end()});
    if (first_word(c.info->name) == word) group.push_back(&c);
  }
  if (group.empty()) {
    return usage_error("",
                       "unknown command '" + printable(word) +
                           "'; the commands are log, heuristics, recover, storage, sheets, "
                           "outbox and databases",
                       "");
  }
  if (args.size() < 2) {
    std::cerr << "xact " << word << ": missing a command\n";
    print_usage(std::cerr, word);
    return kExitUsage;
  }
  if (is_help(args[1])) {
    print_usage(std::cout, word);
    return kExitOk;
  }
  for (const Command* c : group) {
    if (c->info->name == word + " " + args[1])
      return run_command(*c, {args.begin() + 2, args.end()});
  }
  std::string known;
  for (const Command* c : group) {
    known += (known.empty() ? "" : ", ") + c->info->name.substr(word.size() + 1);
  }
  return usage_error(
      word, "unknown command '" + printable(args[1]) + "'; the commands are " + known, word);
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << "xact: missing a command\n";
    print_usage(std::cerr);
    return kExitUsage;
  }
  if (is_help(args[0])) {
    print_usage(std::cout);
    return kExitOk;
  }
  if (args[0] == "help") {
    if (args.size() == 1) {
      print_usage(std::cout);
      return kExitOk;
    }
    // `xact help log dump` is `xact log dump --help`.
    std::vector<std::string> asked(args.begin() + 1, args.end());
    asked.push_back("--help");
    return dispatch(asked);
  }
  if (args[0] == "--version") {
    std::cout << "xact " << XACT_VERSION << '\n';
    return kExitOk;
  }
  return dispatch(args);
}
