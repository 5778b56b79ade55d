#include "cli.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>

#include <boost/algorithm/hex.hpp>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>

namespace xact::cli {

namespace {

// Fills lines up to `width` columns, keeping the text's own line breaks (paragraphs).
std::string wrap(std::string_view text, std::size_t width = 79) {
  std::string out;
  std::size_t column = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '\n') {
      out += '\n';
      column = 0;
      ++i;
      continue;
    }
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    const std::size_t end = std::min(text.find_first_of(" \n", i), text.size());
    const std::string_view word = text.substr(i, end - i);
    if (column > 0 && column + 1 + word.size() > width) {
      out += '\n';
      column = 0;
    } else if (column > 0) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    i = end;
  }
  return out;
}

}  // namespace

CommandLine::CommandLine(CommandInfo info, std::vector<Positional> positionals)
    : info_(std::move(info)), positionals_(std::move(positionals)) {
  visible_.add_options()("help,h", "show this help and exit");
}

void CommandLine::print_help() const {
  std::cout << "Usage: xact " << info_.name << ' ' << info_.synopsis << "\n\n"
            << wrap(info_.summary) << "\n\n";
  if (!info_.details.empty()) std::cout << wrap(info_.details) << "\n\n";
  std::cout << visible_;
}

bool CommandLine::parse(const std::vector<std::string>& args) {
  const bool help_asked = std::any_of(
      args.begin(), args.end(), [](const std::string& a) { return a == "--help" || a == "-h"; });
  po::options_description all;
  all.add(visible_);
  all.add_options()("positional", po::value<std::vector<std::string>>(), "the arguments");
  po::positional_options_description positional;
  positional.add("positional", -1);
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), values_);
    po::notify(values_);
  } catch (const po::error& e) {
    // --help wins over whatever else is wrong on the line.
    if (help_asked) {
      print_help();
      return false;
    }
    throw UsageFailure(e.what());
  }
  if (values_.count("help") != 0) {
    print_help();
    return false;
  }
  std::vector<std::string> given;
  if (values_.count("positional") != 0) {
    given = values_["positional"].as<std::vector<std::string>>();
  }
  if (given.size() < positionals_.size()) {
    const Positional& missing = positionals_[given.size()];
    throw UsageFailure("missing " + missing.name + ": " + missing.what);
  }
  if (given.size() > positionals_.size()) {
    if (positionals_.empty()) {
      throw UsageFailure("unexpected argument '" + printable(given[0]) +
                         "': the command takes options only");
    }
    if (positionals_.size() == 1) {
      throw UsageFailure("one " + positionals_[0].name + " expected, but '" + printable(given[1]) +
                         "' follows '" + printable(given[0]) + "'");
    }
    std::string names;
    for (const auto& p : positionals_) names += (names.empty() ? "" : " ") + p.name;
    throw UsageFailure("unexpected argument '" + printable(given[positionals_.size()]) +
                       "': the command takes " + names);
  }
  for (std::size_t i = 0; i < given.size(); ++i) {
    if (given[i].empty()) {
      throw UsageFailure(positionals_[i].name + " is empty: give " + positionals_[i].what);
    }
  }
  arguments_ = std::move(given);
  return true;
}

std::string iso_time(std::int64_t micros) {
  std::int64_t seconds = micros / 1'000'000;
  std::int64_t fraction = micros % 1'000'000;
  if (fraction < 0) {
    fraction += 1'000'000;
    --seconds;
  }
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "(time " + std::to_string(micros) + " us)";
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%06lldZ", date, static_cast<long long>(fraction));
  return out;
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    } else {
      out += c;  // bytes >= 0x80 pass: names and details may be UTF-8
    }
  }
  return out;
}

Gtrid parse_gtrid(std::string_view hex, std::string_view option) {
  const std::string what = "--" + std::string(option) + " '" + printable(hex) + "'";
  if (hex.size() != 2 * Gtrid::kSize) {
    throw UsageFailure(what + ": a gtrid is " + std::to_string(2 * Gtrid::kSize) +
                       " hex digits (as `xact heuristics list` shows it), this is " +
                       std::to_string(hex.size()) + " characters");
  }
  std::string raw;
  try {
    boost::algorithm::unhex(hex.begin(), hex.end(), std::back_inserter(raw));
  } catch (const boost::algorithm::hex_decode_error&) {
    throw UsageFailure(what + ": not hex digits (0-9, a-f)");
  }
  return *Gtrid::from_bytes(raw);  // the size is checked above
}

DecisionLog::Inspection inspect_log(io::Env& env, const std::string& dir) {
  try {
    return DecisionLog::inspect(env, dir);
  } catch (const StorageError&) {
    // A missing directory or node id is not a race: report it without a second read.
    if (!env.exists(dir) || !env.exists(io::join_path(dir, "node-id"))) throw;
  }
  return DecisionLog::inspect(env, dir);
}

void check_damage(const DecisionLog::Inspection& inspection, const std::string& dir,
                  bool tolerate) {
  const auto& corrupt = inspection.scan.corrupt;
  if (tolerate) return;
  if (!inspection.problems.empty()) {
    std::string what;
    for (const auto& p : inspection.problems) what += (what.empty() ? "" : "; ") + p;
    throw Failure("the decision log in '" + dir + "' is damaged: " + what +
                  ". A lost commit record would make recovery roll back a transaction that "
                  "committed, so the log is not opened: see `xact log dump " +
                  dir +
                  "`, restore the file from a backup if you can; --tolerate-corruption opens it "
                  "anyway, records the damage, and records every rollback that may have been one "
                  "of the lost commits as a heuristic outcome (xact heuristics list)");
  }
  if (corrupt.empty()) return;
  const auto& first = corrupt.front();
  throw Failure("the decision log in '" + dir + "' is damaged: '" + inspection.segment + "' has " +
                std::to_string(corrupt.size()) + " corrupt range(s) followed by " +
                "valid records, the first " + std::to_string(first.bytes) + " bytes at offset " +
                std::to_string(first.offset) + " (" + first.reason +
                "). A lost commit record would make recovery roll back a transaction that "
                "committed, so the log is not opened: see `xact log dump " +
                dir +
                "`, restore the file if you can; --tolerate-corruption opens it anyway, drops "
                "the damaged records, records the damage, and records every rollback that may "
                "have been one of the lost commits as a heuristic outcome (xact heuristics "
                "list)");
}

std::unique_ptr<DecisionLog> open_log(io::Env& env, const std::string& dir, bool tolerate,
                                      std::string_view do_it_there, bool read_only) {
  DecisionLogOptions options;
  options.tolerate_corruption = tolerate;
  options.read_only = read_only;
  try {
    return DecisionLog::open(env, dir, options);
  } catch (const StorageError&) {
    // Is the lock the reason? Try to take it (the LOCK file is part of the documented layout,
    // doc/decision_log.md): refused, the error names the holder; taken, it is released at once
    // and the original error stands.
    std::string held;
    try {
      auto probe = env.lock_file(io::join_path(dir, "LOCK"));
    } catch (const io::FileLockedError& locked) {
      held = locked.what();
    } catch (const StorageError&) {
      // Not held: the original error (which says what is wrong with the lock file) stands.
    }
    if (held.empty()) throw;
    throw Failure("cannot open the decision log in '" + dir + "': " + held +
                  ". One process owns a decision log at a time, and that one is running "
                  "(the application, or another xact command): stop it and run this again, "
                  "or " +
                  std::string(do_it_there) + " in that process");
  }
}

config::Config read_config(const po::variables_map& values) {
  try {
    return config::parse_file(values["config"].as<std::string>());
  } catch (const config::ConfigError& e) {
    throw Failure(e.what());
  }
}

void route_library_log(bool verbose) {
  set_log_level(verbose ? LogLevel::info : LogLevel::error);
  set_log_sink([](LogLevel level, std::string_view message) {
    const char* name = level == LogLevel::error     ? "error"
                       : level == LogLevel::warning ? "warning"
                       : level == LogLevel::info    ? "info"
                                                    : "debug";
    std::cerr << "xact: " << name << ": " << message << '\n';
  });
}

}  // namespace xact::cli
