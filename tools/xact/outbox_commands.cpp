// `xact outbox dead|requeue|drop --config FILE --sql NAME`: the dead messages of a transactional
// outbox (xact::outbox, doc/outbox.md) in one [[sql]] resource of an application's configuration
// file: list them, put them back in the queue, or delete them.
//
// The outbox table is never created here (OutboxOptions::create_table off): a wrong --sql or
// --table is an error, not a new empty table. `dead` opens the resource read-only; `requeue` and
// `drop` change only rows in the dead state (one conditional statement each), so they may run
// while the application and its dispatchers run. A requeued message is found by the
// dispatchers' next poll (within their poll_interval).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <xact/config/config.hpp>
#include <xact/errors.hpp>
#include <xact/outbox/outbox.hpp>

#include "cli.hpp"

namespace xact::cli {

namespace {

const char* const kCommon =
    "--sql NAME names the [[sql]] resource of the configuration file (doc/config.md) that holds "
    "the outbox table; --table its name (default xact_outbox).";

}  // namespace

const CommandInfo kOutboxDeadInfo{
    "outbox dead", "--config FILE --sql NAME [--table T] [--limit N]",
    "list an outbox's dead messages (read-only)",
    "Lists the messages of the outbox table that are in the dead state: their delivery failed "
    "max_attempts times (or their dispatchers died holding them), so no dispatcher delivers "
    "them until they are requeued.",
    std::string(kCommon) +
        "\n\nColumns (tab-separated, after a header line): KEY (the idempotency key), TOPIC, "
        "ATTEMPTS, DEAD_AT (UTC), CREATED_AT (UTC), LAST_ERROR. Oldest death first, at most "
        "--limit (default 1000). The count goes to stderr.\n\n"
        "Example: xact outbox dead --config /etc/app/xact.toml --sql orders\n\n"
        "Exit status: 0 no dead message, 3 dead messages were found (listed), 1 a failure, 2 for "
        "a wrong command line."};

const CommandInfo kOutboxRequeueInfo{
    "outbox requeue", "--config FILE --sql NAME [--table T] (--key KEY... | --all)",
    "put dead outbox messages back in the queue",
    "Takes dead messages out of the dead state: each is due again at once, with its attempts "
    "back to 0 (a full set of retries) and the same idempotency key; its last error is kept "
    "until the next failure. Fix what made the deliveries fail first.",
    std::string(kCommon) +
        " --key may be given several times; --all requeues every dead message.\n\n"
        "Example: xact outbox requeue --config /etc/app/xact.toml --sql orders --all\n\n"
        "Exit status: 0 every named message was dead and is requeued, 1 a named key is not a "
        "dead message (the others are requeued) or a failure, 2 for a wrong command line."};

const CommandInfo kOutboxDropInfo{
    "outbox drop", "--config FILE --sql NAME [--table T] --key KEY...",
    "delete dead outbox messages (never delivered)",
    "Deletes dead messages: they will never be delivered. Only messages in the dead state are "
    "deleted; a pending or delivered message with that key is left alone.",
    std::string(kCommon) +
        " --key may be given several times.\n\n"
        "Example: xact outbox drop --config /etc/app/xact.toml --sql orders --key "
        "0b6c1f9e-...\n\n"
        "Exit status: 0 every named message was dead and is deleted, 1 a named key is not a "
        "dead message (the others are deleted) or a failure, 2 for a wrong command line."};

namespace {

void add_common(CommandLine& line) {
  auto option = line.options().add_options();
  option("config", po::value<std::string>()->required()->value_name("FILE"),
         "the application's configuration file");
  option("sql", po::value<std::string>()->required()->value_name("NAME"),
         "the [[sql]] resource holding the outbox table");
  option("table", po::value<std::string>()->default_value("xact_outbox")->value_name("T"),
         "the outbox table");
  option("verbose,v", "also show xact's informational messages on stderr");
}

// The outbox of --sql/--table, its resource opened without creating anything.
std::shared_ptr<outbox::Outbox> open_outbox(const po::variables_map& values, bool read_only) {
  route_library_log(values.count("verbose") != 0);
  const config::Config config = read_config(values);
  const std::string name = values["sql"].as<std::string>();
  const config::SqlSpec* spec = config.find_sql(name);
  if (spec == nullptr) {
    throw UsageFailure("the file '" + config.file + "' has no [[sql]] resource named '" +
                       printable(name) + "'");
  }
  config::OpenOptions open;
  open.create = false;  // a missing SQLite file is an error, never a new empty one
  open.read_only = read_only;
  outbox::OutboxOptions options;
  options.table = values["table"].as<std::string>();
  options.create_table = false;
  try {
    auto outbox = outbox::Outbox::create(config::open_sql(*spec, open), options);
    outbox->dead_count();  // the table is there, with the dead state's columns
    return outbox;
  } catch (const config::ConfigError& e) {
    throw Failure(e.what());
  } catch (const UsageError& e) {
    throw UsageFailure(e.what());
  } catch (const std::exception& e) {
    throw Failure(spec->origin.where() + ": [[sql]] '" + printable(name) +
                  "': cannot read the outbox table '" + printable(options.table) +
                  "': " + e.what());
  }
}

std::vector<std::string> keys_of(const po::variables_map& values) {
  return values.count("key") != 0 ? values["key"].as<std::vector<std::string>>()
                                  : std::vector<std::string>{};
}

}  // namespace

int run_outbox_dead(const std::vector<std::string>& args) {
  CommandLine line(kOutboxDeadInfo, {});
  add_common(line);
  line.options().add_options()("limit",
                               po::value<std::size_t>()->default_value(1000)->value_name("N"),
                               "list at most N messages");
  if (!line.parse(args)) return kExitOk;
  const auto& values = line.values();
  auto outbox = open_outbox(values, /*read_only=*/true);
  const auto dead = outbox->dead(values["limit"].as<std::size_t>());
  std::cout << "KEY\tTOPIC\tATTEMPTS\tDEAD_AT\tCREATED_AT\tLAST_ERROR\n";
  for (const auto& d : dead) {
    std::cout << printable(d.message.key) << '\t' << printable(d.message.topic) << '\t'
              << d.message.attempts << '\t' << iso_time(d.dead_us) << '\t'
              << iso_time(d.message.created_us) << '\t' << printable(d.last_error) << '\n';
  }
  std::cout.flush();
  const std::size_t total = outbox->dead_count();
  std::cerr << "xact outbox dead: " << total << " dead message(s) in " << outbox->table()
            << (total > dead.size() ? " (" + std::to_string(dead.size()) + " listed)" : "") << '\n';
  return total != 0 ? kExitFound : kExitOk;
}

int run_outbox_requeue(const std::vector<std::string>& args) {
  CommandLine line(kOutboxRequeueInfo, {});
  add_common(line);
  auto option = line.options().add_options();
  option("key", po::value<std::vector<std::string>>()->composing()->value_name("KEY"),
         "a dead message's key (repeatable)");
  option("all", "every dead message");
  if (!line.parse(args)) return kExitOk;
  const auto& values = line.values();
  const auto keys = keys_of(values);
  const bool all = values.count("all") != 0;
  if (keys.empty() == !all) throw UsageFailure("give --key KEY (one or more) or --all");
  auto outbox = open_outbox(values, /*read_only=*/false);
  if (all) {
    std::cout << "requeued " << outbox->requeue_all_dead() << " message(s)\n";
    return kExitOk;
  }
  std::size_t missing = 0;
  for (const auto& key : keys) {
    if (outbox->requeue(key)) {
      std::cout << "requeued " << printable(key) << '\n';
    } else {
      ++missing;
      std::cerr << "xact outbox requeue: " << printable(key) << " is not a dead message in "
                << outbox->table() << '\n';
    }
  }
  return missing == 0 ? kExitOk : kExitFailure;
}

int run_outbox_drop(const std::vector<std::string>& args) {
  CommandLine line(kOutboxDropInfo, {});
  add_common(line);
  line.options().add_options()(
      "key", po::value<std::vector<std::string>>()->composing()->required()->value_name("KEY"),
      "a dead message's key (repeatable)");
  if (!line.parse(args)) return kExitOk;
  const auto& values = line.values();
  auto outbox = open_outbox(values, /*read_only=*/false);
  std::size_t missing = 0;
  for (const auto& key : keys_of(values)) {
    if (outbox->drop_dead(key)) {
      std::cout << "dropped " << printable(key) << '\n';
    } else {
      ++missing;
      std::cerr << "xact outbox drop: " << printable(key) << " is not a dead message in "
                << outbox->table() << '\n';
    }
  }
  return missing == 0 ? kExitOk : kExitFailure;
}

}  // namespace xact::cli
