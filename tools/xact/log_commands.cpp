// `xact log dump` and `xact log pending`: read-only views of a decision log through
// DecisionLog::inspect, which takes no lock and writes nothing, so both work while the
// application that owns the log is running.
#include <iostream>

#include "cli.hpp"

namespace xact::cli {

const CommandInfo kLogDumpInfo{
    "log dump", "<dir>", "show everything a decision log holds (read-only)",
    "Shows everything the decision log in <dir> holds: node id, epoch, newest segment, "
    "damage found while reading it, unfinished commit records and heuristic outcomes.",
    "Read-only: takes no lock and writes nothing, so it works while the application that owns "
    "the log is running (it then shows the log as of the moment it was read).\n\n"
    "Damage in the middle of the segment is shown with its offset and size; a cut-off last "
    "record (a write a crash interrupted before it was acknowledged) is shown as cut off.\n\n"
    "Exit status: 0 when the log could be read (damaged or not), 1 when it cannot be read, "
    "2 for a wrong command line."};

const CommandInfo kLogPendingInfo{
    "log pending", "<dir>", "list pending completions, one line per branch (read-only)",
    "Lists the pending completions in the decision log in <dir>: the branches of committed "
    "transactions that have no done record yet, one line per branch.",
    "Columns (tab-separated, after a header line): GTRID (hex), RESOURCE (the resource name "
    "recovery looks for), GID (the branch's id as the resource holds it, e.g. PostgreSQL's "
    "gid), COMMITTED (when the commit record was written, ISO-8601 UTC).\n\n"
    "`xact recover` re-drives these. Read-only, like `xact log dump`."};

namespace {

std::string plural(std::uint64_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::string gid_of(const Gtrid& gtrid, const std::string& bqual) {
  Xid xid;
  xid.gtrid = gtrid;
  xid.bqual = bqual;
  return xid.to_gid();
}

void print_scan(const DecisionLog::Inspection& log) {
  const io::ScanReport& scan = log.scan;
  // A preallocated segment is never shorter than its size: a shorter one was cut, and what
  // looks like the end of its data may have been acknowledged.
  const bool cut_short = log.preallocated > 0 && log.segment_size < log.preallocated;
  std::cout << "scan          " << (scan.clean() && log.problems.empty() ? "clean" : "damaged")
            << '\n';
  for (const auto& p : log.problems) std::cout << "  problem     " << printable(p) << '\n';
  for (const auto& range : scan.corrupt) {
    std::cout << "  corrupt     " << range.bytes << " bytes at offset " << range.offset << ": "
              << printable(range.reason) << " (valid records follow; skipped)\n";
  }
  if (scan.cut_off_bytes > 0) {
    std::cout << "  cut off     " << scan.cut_off_bytes << " bytes at offset " << scan.end_of_data
              << ": " << printable(scan.cut_off_reason)
              << (cut_short ? " (the segment itself was cut short: this record may have been "
                              "acknowledged)\n"
                  : log.preallocated > 0
                      ? " (an interrupted last write; never acknowledged)\n"
                      : " (an interrupted last write, never acknowledged; or, in a segment that "
                        "is not preallocated, the file was cut there)\n");
  }
  std::cout << "  end of data offset " << scan.end_of_data;
  if (scan.zero_tail_bytes > 0) {
    std::cout << ", then " << scan.zero_tail_bytes << " zero bytes (preallocated, unused)";
  }
  if (cut_short) {
    std::cout << ", then the file ends at " << log.segment_size << " of its " << log.preallocated
              << " preallocated bytes (cut short)";
  }
  std::cout << '\n';
}

}  // namespace

int run_log_dump(const std::vector<std::string>& args) {
  CommandLine line(kLogDumpInfo);
  if (!line.parse(args)) return kExitOk;
  const auto log = inspect_log(io::Env::posix(), line.dir());

  std::cout << "decision log  " << line.dir() << '\n'
            << "node id       " << log.node.to_hex() << '\n'
            << "epoch         " << log.epoch << '\n'
            << "segment       " << (log.segment.empty() ? "(none yet)" : log.segment) << '\n'
            << "replayed      " << plural(log.commits_replayed, "commit record", "commit records")
            << ", " << plural(log.dones_replayed, "done record", "done records") << '\n';
  if (!log.segment.empty()) {
    print_scan(log);
  } else if (!log.problems.empty()) {
    std::cout << "scan          damaged\n";
    for (const auto& p : log.problems) std::cout << "  problem     " << printable(p) << '\n';
  }
  if (!log.damage.empty()) {
    std::cout << "tolerated damage (recovery records each presumed abort of these epochs as a "
                 "heuristic outcome): "
              << log.damage.size() << '\n';
    for (const auto& d : log.damage) {
      std::cout << "  up to epoch " << d.up_to_epoch << "  found " << iso_time(d.time_us) << '\n'
                << "    " << printable(d.description) << '\n';
    }
  }

  std::cout << "\nunfinished commit records (pending completions): " << log.unfinished.size()
            << '\n';
  for (const auto& record : log.unfinished) {
    std::cout << "  gtrid " << record.gtrid.to_hex() << "  committed " << iso_time(record.time_us)
              << '\n';
    for (const auto& p : record.participants) {
      std::cout << "    resource " << printable(p.resource) << "  bqual " << printable(p.bqual)
                << "  gid " << gid_of(record.gtrid, p.bqual) << '\n';
    }
  }

  std::cout << "\nheuristic outcomes: " << log.heuristics.size() << '\n';
  for (const auto& h : log.heuristics) {
    std::cout << "  gtrid " << h.gtrid.to_hex() << "  resource " << printable(h.resource)
              << "  bqual " << printable(h.bqual) << '\n'
              << "    outcome " << printable(h.outcome) << "  found " << iso_time(h.time_us) << '\n'
              << "    detail  " << printable(h.detail) << '\n';
  }
  return kExitOk;
}

int run_log_pending(const std::vector<std::string>& args) {
  CommandLine line(kLogPendingInfo);
  if (!line.parse(args)) return kExitOk;
  const auto log = inspect_log(io::Env::posix(), line.dir());
  std::cout << "GTRID\tRESOURCE\tGID\tCOMMITTED\n";
  for (const auto& record : log.unfinished) {
    for (const auto& p : record.participants) {
      std::cout << record.gtrid.to_hex() << '\t' << printable(p.resource) << '\t'
                << gid_of(record.gtrid, p.bqual) << '\t' << iso_time(record.time_us) << '\n';
    }
  }
  return kExitOk;
}

}  // namespace xact::cli
