// `xact storage verify|dump|pack|backup`: an operator's view of a FileStorage file
// (<xact/objectstore/file_storage.hpp>, doc/file_storage.md).
//
// verify and dump read the file without opening the storage: no lock, nothing written, so they
// work while the application has the file open. pack opens the storage and so takes its lock:
// it refuses while another process has the file open. backup always opens the file read-only
// (no lock, nothing written: a backup never changes its source) and copies what was committed
// when the copy started, whether or not another process has the file open.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/file_storage.hpp>

#include "cli.hpp"

namespace xact::cli {

namespace os = xact::objectstore;

const CommandInfo kStorageVerifyInfo{
    "storage verify", "<file>", "check every record of a storage file (read-only)",
    "Checks every record of the object storage file <file>: checksums, the order of "
    "transaction ids, that every commit or abort mark decides a prepared transaction, the "
    "back pointers of every revision, and that no current object refers to a missing one. "
    "Prints what it found.",
    "Read-only: takes no lock and writes nothing, so it works while the application has the "
    "file open (it then checks what was complete when it started). A cut-off last record (a "
    "write a crash interrupted) is shown but is not a problem: opening the storage cuts it "
    "off.\n\n"
    "Exit status: 0 the file is sound, 1 problems were found (restore the file from a backup, "
    "or open it with FileStorageOptions::salvage to drop the damaged records) or the file "
    "cannot be read, 2 for a wrong command line."};

const CommandInfo kStorageDumpInfo{
    "storage dump", "<file> [--oid OID] [--tid TID]",
    "show the records of a storage file (read-only)",
    "Shows the records of the object storage file <file> in file order: one line per record "
    "(offset, kind, size, tid, transaction id as the gid of its branch, user, description), "
    "then one indented line per object it writes: `oid -> type vN [state]`.",
    "--oid shows only the transactions that write that object (and the marks that decide "
    "them), with only its entry; --tid only the transaction with that tid. OID and TID are "
    "hexadecimal with a 0x prefix (as the dump prints them) or decimal. A prepared record says "
    "how it was decided (by the commit or abort mark at a later offset) or that it is still "
    "undecided.\n\n"
    "Read-only, like `xact storage verify`. Damaged ranges are skipped and listed at the end.\n\n"
    "Exit status: 0 when the file could be read (damaged or not), 1 when it cannot be read or "
    "is not a storage file, 2 for a wrong command line."};

const CommandInfo kStoragePackInfo{
    "storage pack", "<file> [--before TIME | --days N]",
    "drop old revisions and unreachable objects (takes the storage's lock)",
    "Packs the object storage file <file> as of a time: removes the revisions that were "
    "replaced before that time and the objects that were no longer reachable from the root "
    "then. History after that time is kept. Prints what it dropped.",
    "--before TIME packs as of an ISO-8601 UTC time (2026-11-22T10:15:03Z, with optional "
    "fractional seconds, or a date, 2026-11-22, for its midnight UTC); --days N as of N days "
    "ago; with neither, as of now (every old revision goes).\n\n"
    "Opens the storage, which takes its lock: it fails at once, naming the holder, while the "
    "application has the file open; stop it first, or call FileStorage::pack in it (commits go "
    "on during a pack). The file as it was before is kept as <file>.old until the next pack.\n\n"
    "Exit status: 0 packed, 1 the storage cannot be opened (missing, damaged, in use) or the "
    "pack failed, 2 for a wrong command line (a malformed or future --before)."};

const CommandInfo kStorageBackupInfo{
    "storage backup", "<file> <dest>", "copy what is committed to a new file",
    "Writes a consistent copy of the object storage file <file> to <dest>: every transaction "
    "committed when the copy starts. The copy opens like the original.",
    "When no process has the file open, the storage is opened as usual (taking its lock). "
    "When the application has it open, the file is opened read-only instead (no lock, nothing "
    "written) and the copy holds what the application had committed when the copy started; "
    "the application goes on committing meanwhile.\n\n"
    "The copy is written to <dest>.tmp, synced, and renamed to <dest>. An existing <dest> is "
    "refused.\n\n"
    "Exit status: 0 copied, 1 the storage cannot be opened or the copy failed, 2 for a wrong "
    "command line."};

namespace {

const std::vector<Positional> kFileArgument{{"<file>", "the object storage file"}};

// A missing path, a directory or another kind of file, each with what to do.
void check_storage_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) {
    throw Failure(
        "no storage file at '" + path +
        "': " + (ec && ec != std::errc::no_such_file_or_directory ? ec.message() : "no such file") +
        " (check the path)");
  }
  if (fs::is_directory(status)) {
    throw Failure("'" + path +
                  "' is a directory, not a storage file: give the data file the "
                  "application passes to FileStorage::open");
  }
}

// A storage file starts with a header record: anything else is another kind of file (or one
// whose first bytes are damaged).
bool starts_with_header(const std::string& path) {
  std::optional<os::FileRecordInfo> first;
  os::FileStorage::dump(path, [&](const os::FileRecordInfo& info) {
    first = info;
    return false;
  });
  return first && first->offset == 0 && first->kind == os::FileRecordInfo::Kind::header;
}

Failure not_a_storage_file(const std::string& path) {
  return Failure("'" + path +
                 "' is not an xact object storage file: it does not start with a storage header "
                 "(another kind of file, or its first bytes are damaged; `xact storage verify` "
                 "says more, and a backup is the way back)");
}

// "0x1f" (as the tools print oids and tids) or "31".
std::uint64_t parse_id(const std::string& text, std::string_view option) {
  std::string_view digits = text;
  int base = 10;
  if (digits.starts_with("0x") || digits.starts_with("0X")) {
    digits.remove_prefix(2);
    base = 16;
  }
  std::uint64_t value = 0;
  const auto [end, error] =
      std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size()) {
    throw UsageFailure("--" + std::string(option) + " '" + printable(text) +
                       "': expected a number, hexadecimal with 0x (0x1f, as `xact storage dump` "
                       "prints it) or decimal (31)");
  }
  return value;
}

// ISO-8601 UTC: "2026-11-22T10:15:03Z", "2026-11-22T10:15:03.25Z" or "2026-11-22". A time
// after `now` is refused (before it is converted: system_clock cannot hold every year).
std::chrono::system_clock::time_point parse_utc(const std::string& text,
                                                std::chrono::system_clock::time_point now) {
  const auto bad = [&](const std::string& why) {
    return UsageFailure("--before '" + printable(text) + "': " + why +
                        "; expected an ISO-8601 UTC time such as 2026-11-22T10:15:03Z (or "
                        "2026-11-22 for midnight UTC)");
  };
  std::tm tm{};
  const char* rest = strptime(text.c_str(), "%Y-%m-%d", &tm);
  if (rest == nullptr) throw bad("not a date");
  std::chrono::microseconds fraction{0};
  if (*rest != '\0') {
    if (*rest != 'T' && *rest != 't')
      throw bad("the date is followed by '" + printable(rest) + "'");
    rest = strptime(rest + 1, "%H:%M:%S", &tm);
    if (rest == nullptr) throw bad("no time of day (HH:MM:SS) after the T");
    if (*rest == '.') {
      ++rest;
      std::int64_t scale = 100'000;
      if (*rest < '0' || *rest > '9') throw bad("no digits after the decimal point");
      for (; *rest >= '0' && *rest <= '9'; ++rest, scale /= 10) {
        fraction += std::chrono::microseconds((*rest - '0') * scale);
      }
    }
    if (std::string_view(rest) != "Z" && std::string_view(rest) != "z") {
      throw bad(*rest == '\0' ? "no Z at the end: the time must be given in UTC"
                              : "'" + printable(rest) + "' where the Z of UTC should be");
    }
  }
  const std::time_t seconds = timegm(&tm);
  if (seconds == static_cast<std::time_t>(-1)) throw bad("out of range");
  if (seconds > std::chrono::system_clock::to_time_t(now)) {
    throw UsageFailure("--before '" + printable(text) +
                       "' is in the future: packing as of a time not reached yet is packing "
                       "as of now; leave --before out for that");
  }
  return std::min(now, std::chrono::system_clock::from_time_t(seconds) + fraction);
}

// After FileStorage::open failed: the holder of the storage's lock (FILE.lock, part of the
// documented layout) when another process has the file open, or nothing when the lock is free
// and the failure has another reason. Taking the lock to find out releases it at once.
std::optional<std::string> lock_holder(const std::string& path) {
  try {
    auto probe = io::Env::posix().lock_file(path + ".lock");
  } catch (const io::FileLockedError& locked) {
    return std::string(locked.what());
  } catch (const StorageError&) {
    // not held: the failure has another reason
  }
  return std::nullopt;
}

// What opening the storage did that an operator should know of (a cut-off tail moved aside, an
// interrupted pack completed, prepared transactions waiting for recovery), on stdout.
void print_open_notes(const os::FileStorage& storage) {
  const os::FileStorageOpenReport& report = storage.open_report();
  if (report.cut_off_bytes > 0 || !report.repaired.empty() || !report.salvaged.empty() ||
      report.prepared > 0) {
    std::cout << storage.path() << ": " << report.describe() << '\n';
  }
}

std::string quoted(const std::string& text) { return "'" + printable(text) + "'"; }

std::string xid_text(const Xid& xid) { return xid.gtrid.empty() ? "-" : xid.to_gid(); }

// What a commit or abort mark says about the prepared record at its target.
struct Decision {
  bool committed = false;
  os::Tid tid = os::kNoTid;
  std::uint64_t mark_offset = 0;
};

}  // namespace

int run_storage_verify(const std::vector<std::string>& args) {
  CommandLine line(kStorageVerifyInfo, kFileArgument);
  if (!line.parse(args)) return kExitOk;
  const std::string& path = line.argument(0);
  check_storage_file(path);
  const os::VerifyReport report = os::FileStorage::verify(path);
  std::cout << report.describe();
  if (report.ok()) return kExitOk;
  if (!starts_with_header(path)) throw not_a_storage_file(path);
  throw Failure("'" + path + "' is damaged: " +
                std::to_string(report.problems.size() + report.scan.corrupt.size()) +
                " problem(s), listed above. Restore it from a backup (and check the backup "
                "with `xact storage verify`), or, to keep what is intact, open it with "
                "FileStorageOptions::salvage, which drops the damaged records");
}

int run_storage_dump(const std::vector<std::string>& args) {
  CommandLine line(kStorageDumpInfo, kFileArgument);
  auto option = line.options().add_options();
  option("oid", po::value<std::string>()->value_name("OID"),
         "only the transactions that write this object (0x1f or 31)");
  option("tid", po::value<std::string>()->value_name("TID"),
         "only the transaction with this tid (0x... or decimal)");
  if (!line.parse(args)) return kExitOk;
  const auto& values = line.values();
  std::optional<os::Oid> oid;
  std::optional<os::Tid> tid;
  if (values.count("oid") != 0) oid = parse_id(values["oid"].as<std::string>(), "oid");
  if (values.count("tid") != 0) tid = parse_id(values["tid"].as<std::string>(), "tid");
  const std::string& path = line.argument(0);
  check_storage_file(path);
  if (!starts_with_header(path)) throw not_a_storage_file(path);

  // First pass: how each prepared record was decided (its mark comes after it), so that a
  // prepared record shows its outcome and --tid finds a prepared record by its commit's tid.
  std::map<std::uint64_t, Decision> decisions;
  os::FileStorage::dump(path, [&](const os::FileRecordInfo& r) {
    if (r.kind == os::FileRecordInfo::Kind::commit_mark ||
        r.kind == os::FileRecordInfo::Kind::abort_mark) {
      Decision d;
      d.committed = r.kind == os::FileRecordInfo::Kind::commit_mark;
      d.tid = r.tid;
      d.mark_offset = r.offset;
      decisions[r.prepared_offset] = d;
    }
    return true;
  });

  std::uint64_t records = 0;
  std::uint64_t shown = 0;
  std::set<std::uint64_t> shown_prepared;  // for --oid: the marks of the records shown
  std::cout << "storage file " << path << '\n';
  const io::ScanReport scan = os::FileStorage::dump(path, [&](const os::FileRecordInfo& r) {
    ++records;
    using Kind = os::FileRecordInfo::Kind;
    const bool is_mark = r.kind == Kind::commit_mark || r.kind == Kind::abort_mark;
    const bool is_transaction = r.kind == Kind::prepared || r.kind == Kind::committed;
    const auto decision = r.kind == Kind::prepared ? decisions.find(r.offset) : decisions.end();
    const os::Tid record_tid =
        r.kind == Kind::prepared
            ? (decision != decisions.end() && decision->second.committed ? decision->second.tid
                                                                         : os::kNoTid)
            : r.tid;
    bool wanted = true;
    if (oid) {
      wanted = (is_transaction && std::any_of(r.entries.begin(), r.entries.end(),
                                              [&](const auto& e) { return e.oid == *oid; })) ||
               (is_mark && shown_prepared.contains(r.prepared_offset));
    }
    if (tid) {
      wanted = wanted && (is_transaction || r.kind == Kind::commit_mark) && record_tid == *tid;
    }
    if (!wanted) return true;
    ++shown;
    if (r.kind == Kind::prepared) shown_prepared.insert(r.offset);

    std::cout << "@" << r.offset << ' ' << to_string(r.kind) << " size " << r.size;
    switch (r.kind) {
      case Kind::header: break;
      case Kind::committed:
      case Kind::prepared:
        std::cout << " tid " << (record_tid == os::kNoTid ? "-" : os::tid_repr(record_tid))
                  << " xid " << xid_text(r.xid) << " user " << quoted(r.meta.user)
                  << " description " << quoted(r.meta.description);
        if (r.kind == Kind::prepared) {
          if (decision == decisions.end()) {
            std::cout << " (undecided: recovery decides it)";
          } else {
            std::cout << (decision->second.committed ? " (committed by the mark at @"
                                                     : " (aborted by the mark at @")
                      << decision->second.mark_offset << ')';
          }
        }
        if (!r.read_checks.empty()) std::cout << " read-checks " << r.read_checks.size();
        break;
      case Kind::commit_mark:
        std::cout << " tid " << os::tid_repr(r.tid) << " commits @" << r.prepared_offset;
        break;
      case Kind::abort_mark: std::cout << " aborts @" << r.prepared_offset; break;
      case Kind::unknown: std::cout << " error " << quoted(r.error); break;
    }
    std::cout << '\n';
    for (const auto& e : r.entries) {
      if (oid && e.oid != *oid) continue;
      std::string state;
      try {
        state = os::describe_record(e.data);
      } catch (const std::exception& error) {
        state = "(cannot be decoded: " + printable(error.what()) + ")";
      }
      std::cout << "  " << os::oid_repr(e.oid) << " -> " << state;
      if (e.prev_serial != os::kNoTid)
        std::cout << "  (replaces " << os::tid_repr(e.prev_serial) << ')';
      std::cout << '\n';
    }
    return true;
  });
  std::cout << shown << " of " << records << " records shown\n"
            << "framing: " << scan.describe() << '\n';
  return kExitOk;
}

// --days N: a whole number of days that keeps the pack time after the epoch (tids count
// from 1970), so "as of N days ago" is always a time a tid can name.
std::int64_t parse_days(const std::string& text) {
  std::int64_t days = -1;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), days);
  const auto since_epoch = std::chrono::duration_cast<std::chrono::days>(
      std::chrono::system_clock::now().time_since_epoch());
  if (error != std::errc() || end != text.data() + text.size() || days < 0 ||
      days > since_epoch.count()) {
    throw UsageFailure("--days '" + text + "': expected a whole number of days from 0 to " +
                       std::to_string(since_epoch.count()) +
                       " (how long ago to pack as of, at most back to 1970; 0 packs as of now)");
  }
  return days;
}

int run_storage_pack(const std::vector<std::string>& args) {
  CommandLine line(kStoragePackInfo, kFileArgument);
  auto option = line.options().add_options();
  option("before", po::value<std::string>()->value_name("TIME"),
         "pack as of this ISO-8601 UTC time (2026-11-22T10:15:03Z, or a date)");
  // Read as text and range-checked here: program_options would take "-5" for an unsigned as
  // a huge number, and days beyond the tid range would overflow the time arithmetic.
  option("days", po::value<std::string>()->value_name("N"),
         "pack as of N days ago (0 to the days since 1970)");
  option("verbose,v", "also show xact's informational messages on stderr");
  if (!line.parse(args)) return kExitOk;
  const auto& values = line.values();
  if (values.count("before") != 0 && values.count("days") != 0) {
    throw UsageFailure("--before and --days both say when to pack as of: give one");
  }
  const auto now = std::chrono::system_clock::now();
  auto as_of = now;
  if (values.count("before") != 0) {
    as_of = parse_utc(values["before"].as<std::string>(), now);
  } else if (values.count("days") != 0) {
    as_of = now - std::chrono::days(parse_days(values["days"].as<std::string>()));
  }
  route_library_log(values.count("verbose") != 0);
  const std::string& path = line.argument(0);
  check_storage_file(path);

  os::FileStorageOptions options;
  options.create = false;
  std::unique_ptr<os::FileStorage> storage;
  try {
    storage = os::FileStorage::open(path, options);
  } catch (const StorageError&) {
    const auto holder = lock_holder(path);
    if (!holder) throw;
    throw Failure("cannot pack '" + path + "': it is open in another process: " + *holder +
                  ". Pack opens the storage, and one process opens it at a time: stop the "
                  "application and run this again, or call FileStorage::pack in it (commits go "
                  "on during a pack)");
  }
  print_open_notes(*storage);
  const os::PackReport report = storage->pack(os::tid_for_time(as_of));
  storage->close();
  std::cout << path << ": " << report.describe() << '\n';
  return kExitOk;
}

int run_storage_backup(const std::vector<std::string>& args) {
  CommandLine line(kStorageBackupInfo, {{"<file>", "the object storage file"},
                                        {"<dest>", "the file to write the copy to"}});
  line.options().add_options()("verbose,v", "also show xact's informational messages on stderr");
  if (!line.parse(args)) return kExitOk;
  route_library_log(line.values().count("verbose") != 0);
  const std::string& path = line.argument(0);
  const std::string& dest = line.argument(1);
  check_storage_file(path);
  std::error_code ec;
  if (std::filesystem::exists(dest, ec)) {
    throw Failure("'" + dest +
                  "' exists: the backup does not replace a file; remove it or "
                  "choose another name");
  }

  // Always read-only: a backup never changes its source (no tail cut, no index written, no
  // pack completed), whether or not another process has it open.
  os::FileStorageOptions options;
  options.create = false;
  options.read_only = true;
  // Asked only when a lock file is there, so the backup creates nothing beside the source.
  std::error_code lock_ec;
  const std::string held_by = std::filesystem::exists(path + ".lock", lock_ec)
                                  ? lock_holder(path).value_or("")
                                  : std::string();
  auto storage = os::FileStorage::open(path, options);
  print_open_notes(*storage);
  const std::uint64_t bytes = storage->backup(dest);
  const os::FileStorageOpenReport& opened = storage->open_report();
  std::cout << "backed up " << path << " to " << dest << ": " << bytes << " bytes, "
            << opened.objects << " objects, last transaction " << os::tid_repr(opened.last_tid);
  if (opened.prepared > 0) {
    std::cout << ", " << opened.prepared << " prepared transaction(s) (recovery decides them)";
  }
  std::cout << '\n';
  if (!held_by.empty()) {
    std::cout << "the storage is open in another process (" << held_by
              << "): copied what it had committed when the copy started, read-only\n";
  }
  storage->close();
  return kExitOk;
}

}  // namespace xact::cli
