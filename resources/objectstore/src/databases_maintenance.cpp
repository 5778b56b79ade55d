// Databases: the registry-wide maintenance: a backup of every file storage at one common point,
// and the check of every reference (dangling, forbidden by the seat belt).
#include <xact/objectstore/databases.hpp>

#include <filesystem>
#include <map>
#include <set>

#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/objectstore/memory_storage.hpp>

namespace xact::objectstore {

namespace {

std::vector<std::shared_ptr<DB>> snapshot_list(std::mutex& mu,
                                               const std::vector<std::shared_ptr<DB>>& dbs) {
  std::lock_guard lock(mu);
  return dbs;
}

bool is_memory(const DB& db) {
  return dynamic_cast<const MemoryStorage*>(&db.storage()) != nullptr;
}

// The prepared transactions of a storage file that no mark decides, and the gtrids (hex) of
// those a commit mark decided.
struct Decisions {
  std::vector<Xid> undecided;
  std::set<std::string> committed;
};

Decisions read_decisions(const std::string& path) {
  std::map<std::uint64_t, Xid> prepared;
  Decisions d;
  FileStorage::dump(path, [&](const FileRecordInfo& r) {
    switch (r.kind) {
      case FileRecordInfo::Kind::prepared: prepared.emplace(r.offset, r.xid); break;
      case FileRecordInfo::Kind::commit_mark:
        if (auto it = prepared.find(r.prepared_offset); it != prepared.end()) {
          d.committed.insert(it->second.gtrid.to_hex());
          prepared.erase(it);
        }
        break;
      case FileRecordInfo::Kind::abort_mark: prepared.erase(r.prepared_offset); break;
      default: break;
    }
    return true;
  });
  for (auto& [offset, xid] : prepared) d.undecided.push_back(std::move(xid));
  return d;
}

std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& i : items) out += (out.size() > 1 ? ", " : "") + toml_string(i);
  return out + "]";
}

}  // namespace

// --- backup -----------------------------------------------------------------------------------

DatabasesBackupReport Databases::backup(const std::string& directory) const {
  namespace stdfs = std::filesystem;
  io::Env& env = io::Env::posix();
  DatabasesBackupReport report;
  report.directory = directory;
  std::error_code ec;
  if (stdfs::exists(directory, ec)) {
    if (!stdfs::is_directory(directory, ec) || !stdfs::is_empty(directory, ec)) {
      throw UsageError("backup directory '" + directory +
                       "' exists and is not an empty directory: give a new one (a backup is "
                       "never written over another)");
    }
  } else {
    stdfs::create_directories(directory, ec);
    if (ec) {
      throw StorageError("cannot create the backup directory '" + directory + "': " +
                         ec.message());
    }
  }
  struct Item {
    std::shared_ptr<DB> db;
    FileStorage* storage;
    FileStorage::BackupPoint point;
    std::string dest;
  };
  std::vector<Item> items;
  for (const auto& db : snapshot_list(mutex_, dbs_)) {
    auto* fs = dynamic_cast<FileStorage*>(&db->storage());
    if (fs == nullptr) {
      report.skipped.push_back(db->name() + ": " + db->storage().describe() +
                               " (nothing of it outlives the process; not copied)");
      continue;
    }
    items.push_back({db, fs, {}, (stdfs::path(directory) / (db->name() + ".xfs")).string()});
  }
  {
    // No transaction finishes in two or more databases while the points are taken: each such
    // transaction is in every copy or in none.
    std::lock_guard commit(commit_mutex_);
    for (auto& item : items) item.point = item.storage->backup_point();
  }
  for (auto& item : items) {
    DatabasesBackupReport::Copy copy;
    copy.database = item.db->name();
    copy.source = item.storage->path();
    copy.file = item.db->name() + ".xfs";
    copy.bytes = item.storage->backup(item.dest, item.point);
    report.copies.push_back(std::move(copy));
  }
  // Transactions prepared but not finished at the copy point: those finished in another copy
  // (a finish the re-driver still owed) are finished here too, the rest rolled back, so that
  // every copy opens without transactions in doubt and the copies agree.
  std::vector<Decisions> decisions;
  std::set<std::string> committed;
  for (const auto& item : items) {
    decisions.push_back(read_decisions(item.dest));
    committed.insert(decisions.back().committed.begin(), decisions.back().committed.end());
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    auto& copy = report.copies[i];
    if (decisions[i].undecided.empty()) {
      FileStorageOptions read_only;
      read_only.read_only = true;
      copy.last_tid = FileStorage::open(items[i].dest, read_only)->last_transaction();
      continue;
    }
    auto storage = FileStorage::open(items[i].dest);
    for (const Xid& xid : decisions[i].undecided) {
      if (committed.count(xid.gtrid.to_hex())) {
        storage->commit_prepared(xid);
        copy.committed_in_copy.push_back(xid.to_gid());
      } else {
        storage->rollback_prepared(xid);
        copy.rolled_back_in_copy.push_back(xid.to_gid());
      }
    }
    copy.last_tid = storage->last_transaction();
    storage->close();
  }
  // The manifest, written last: a directory without one is not a finished backup.
  std::string m = "# xact databases backup: copies of every file storage at one common point\n";
  m += "created = " + toml_string(tid_repr(tid_for_time(std::chrono::system_clock::now()))) + "\n";
  for (const auto& c : report.copies) {
    m += "\n[[database]]\nname = " + toml_string(c.database) + "\nsource = " + toml_string(c.source) +
         "\nfile = " + toml_string(c.file) + "\nbytes = " + std::to_string(c.bytes) +
         "\nlast_tid = " + toml_string(tid_repr(c.last_tid)) +
         "\ncommitted_in_copy = " + list(c.committed_in_copy) +
         "\nrolled_back_in_copy = " + list(c.rolled_back_in_copy) + "\n";
  }
  if (!report.skipped.empty()) m += "\nskipped = " + list(report.skipped) + "\n";
  report.manifest = (stdfs::path(directory) / "MANIFEST").string();
  {
    auto out = env.new_writable_file(report.manifest + ".tmp");
    out->append(m);
    out->sync();
    out->close();
  }
  env.rename_file(report.manifest + ".tmp", report.manifest);
  env.sync_dir(directory);
  return report;
}

std::string DatabasesBackupReport::describe() const {
  std::string out = "backup in '" + directory + "' (manifest " + manifest + "):\n";
  for (const auto& c : copies) {
    out += "  " + c.database + ": " + c.source + " -> " + c.file + ", " +
           std::to_string(c.bytes) + " bytes, last transaction " + tid_repr(c.last_tid) + "\n";
    for (const auto& g : c.committed_in_copy) {
      out += "    finished in the copy (committed in another database's copy): " + g + "\n";
    }
    for (const auto& g : c.rolled_back_in_copy) {
      out += "    rolled back in the copy (not finished at the copy point): " + g + "\n";
    }
  }
  for (const auto& s : skipped) out += "  skipped " + s + "\n";
  return out;
}

// --- check ------------------------------------------------------------------------------------

ReferenceCheckReport Databases::check_references(const ReferenceCheckOptions& options) const {
  ReferenceCheckReport report;
  const auto dbs = snapshot_list(mutex_, dbs_);
  std::map<std::string, std::shared_ptr<DB>, std::less<>> by_name;
  for (const auto& d : dbs) by_name.emplace(d->name(), d);
  // First the references (the walk holds each storage's read lock: no load inside it).
  struct Seen {
    const DB* db;
    Oid oid;
    std::string type;
    std::string target_database;  // empty: the same database
    Oid target;
  };
  std::vector<Seen> seen;
  for (const auto& d : dbs) {
    d->storage().for_each_object([&](Oid oid, Tid, std::string_view data) {
      ++report.objects;
      std::string type = record_type_name(data);
      try {
        for_each_reference(data, [&](std::string_view database, Oid target) {
          seen.push_back({d.get(), oid, type,
                          database == d->name() ? std::string() : std::string(database), target});
        });
      } catch (const StateError& e) {
        ReferenceFinding f;
        f.database = d->name();
        f.oid = oid;
        f.type = type;
        f.rule = std::string("its record cannot be decoded: ") + e.what();
        report.problems.push_back(std::move(f));
      }
      return true;
    });
  }
  for (const auto& s : seen) {
    ++report.references;
    ReferenceFinding f;
    f.database = s.db->name();
    f.oid = s.oid;
    f.type = s.type;
    f.target_database = s.target_database.empty() ? s.db->name() : s.target_database;
    f.target_oid = s.target;
    const auto target_db = by_name.find(f.target_database);
    if (target_db == by_name.end()) {
      f.kind = ReferenceFinding::Kind::dangling;
      f.rule = "no database named '" + f.target_database + "' in the registry";
      report.problems.push_back(f);
      ++report.cross_references;
      continue;
    }
    const DB& tdb = *target_db->second;
    auto rev = tdb.storage().load(s.target);
    if (!rev) {
      // A transaction finishing in several databases may be half-way: wait for it to finish.
      { std::lock_guard wait(commit_mutex_); }
      rev = tdb.storage().load(s.target);
    }
    if (rev) {
      f.target_type = record_type_name(rev->data);
    } else if (options.memory_databases_unknown && is_memory(tdb)) {
      if (!s.target_database.empty()) {
        ReferenceFinding note = f;
        note.kind = ReferenceFinding::Kind::into_volatile;
        note.rule = "database '" + tdb.name() +
                    "' is a memory database: its objects are not visible here, and are lost "
                    "whenever the application stops";
        report.notes.push_back(std::move(note));
      }
    } else {
      f.kind = ReferenceFinding::Kind::dangling;
      f.rule = "the object does not exist in database '" + tdb.name() + "' (" +
               tdb.storage().describe() + ")";
      report.problems.push_back(f);
    }
    if (s.target_database.empty()) continue;
    ++report.cross_references;
    const XrefPolicy policy = s.db->options().xrefs;
    if (policy == XrefPolicy::forbid) {
      f.kind = ReferenceFinding::Kind::forbidden;
      f.rule = "database '" + f.database + "' has xrefs = forbid";
      report.problems.push_back(f);
    } else if (policy == XrefPolicy::check) {
      XrefCheck check{f.database, f.oid, f.type, f.target_database, f.target_oid, f.target_type};
      const auto decision = decide_xref(nullptr, check);
      if (decision && !*decision) {
        f.kind = ReferenceFinding::Kind::forbidden;
        f.rule = "database '" + f.database +
                 "' has xrefs = check, and the registry's policy for the type refuses it";
        report.problems.push_back(f);
      } else if (!decision) {
        f.kind = ReferenceFinding::Kind::undecided;
        f.rule = "database '" + f.database +
                 "' has xrefs = check and no registry rule decides: the referring type's "
                 "check_xref() decides at commit (not visible to a check)";
        report.notes.push_back(f);
      }
    }
  }
  return report;
}

std::string ReferenceFinding::describe() const {
  static const char* const kKinds[] = {"dangling", "forbidden", "undecided", "into volatile"};
  std::string out = std::string(kKinds[static_cast<int>(kind)]) + ": " + database + " " +
                    oid_repr(oid) + " (" + (type.empty() ? "?" : type) + ")";
  if (!target_database.empty()) {
    out += " -> " + target_database + " " + oid_repr(target_oid) + " (" +
           (target_type.empty() ? "missing" : target_type) + ")";
  }
  return out + ": " + rule;
}

std::string ReferenceCheckReport::describe() const {
  std::string out = std::to_string(objects) + " objects, " + std::to_string(references) +
                    " references (" + std::to_string(cross_references) +
                    " across databases): " +
                    (ok() ? "no dangling or forbidden reference"
                          : std::to_string(problems.size()) + " problem(s)") +
                    "\n";
  for (const auto& p : problems) out += "  " + p.describe() + "\n";
  for (const auto& n : notes) out += "  note: " + n.describe() + "\n";
  return out;
}

}  // namespace xact::objectstore
