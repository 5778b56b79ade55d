// Databases: a registry of named object databases (ZODB's `databases` mapping).
//
//   auto dbs = Databases::create();
//   dbs->add(DB::open(FileStorage::open("main.xfs"), {.name = "main"}));      // the default
//   dbs->add(DB::open(FileStorage::open("catalog.xfs"), {.name = "catalog"}));
//   auto conn = dbs->open();                         // a connection to the default database
//   Connection& cat = conn->get_connection("catalog");  // same manager, same transaction
//   conn->root()->set("n", 1);
//   cat.root()->set("n", 1);
//   tm.commit();   // both databases commit atomically (2PC, the manager's decision log)
//
// A connection opened on a database of a registry belongs to a connection set: the
// connections get_connection() gave it (one per database, opened with the same transaction
// manager, closed with it). The set's snapshots are taken together, and a transaction that
// committed in two or more databases finishes in all of them under the registry's commit lock,
// which is also held while a set takes its snapshots: a transaction committed in two databases
// is visible in both or in neither.
//
// Thread-safety: Databases is thread-safe. Add every database before opening connections.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>

namespace xact::objectstore {

/// What Databases::backup copied (databases_maintenance.cpp).
struct DatabasesBackupReport {
  struct Copy {
    std::string database;
    std::string source;  ///< the file storage's path
    std::string file;    ///< the copy's file name inside the backup directory
    std::uint64_t bytes = 0;
    Tid last_tid = kNoTid;  ///< the copy's newest transaction
    /// Transactions prepared but not finished at the copy point: finished in the copy when
    /// another database's copy holds their commit (a finish the re-driver still owed), rolled
    /// back otherwise (the copy is the state as of its point). By transaction id (gid).
    std::vector<std::string> committed_in_copy;
    std::vector<std::string> rolled_back_in_copy;
  };
  std::string directory;
  std::string manifest;  ///< the manifest's path
  std::vector<Copy> copies;
  std::vector<std::string> skipped;  ///< databases not copied, and why
  std::string describe() const;
};

/// One reference Databases::check_references reports.
struct ReferenceFinding {
  enum class Kind {
    dangling,        ///< the target does not exist (or its database is not in the registry)
    forbidden,       ///< the referrer's database policy refuses it (forbid, or check refused)
    undecided,       ///< xrefs = check and no registry rule decides: the type's check_xref does
    into_volatile,   ///< into a memory database whose objects this process cannot see
  };
  Kind kind = Kind::dangling;
  std::string database;  ///< the referrer's
  Oid oid = 0;
  std::string type;
  std::string target_database;
  Oid target_oid = 0;
  std::string target_type;  ///< empty when the target is missing
  std::string rule;         ///< why it is reported
  std::string describe() const;
};

struct ReferenceCheckReport {
  std::uint64_t objects = 0;
  std::uint64_t references = 0;
  std::uint64_t cross_references = 0;
  std::vector<ReferenceFinding> problems;  ///< dangling and forbidden
  std::vector<ReferenceFinding> notes;     ///< undecided, into volatile databases
  bool ok() const { return problems.empty(); }
  std::string describe() const;
};

struct ReferenceCheckOptions {
  /// The memory databases are empty in this process (a tool's, not the application's): a
  /// reference into one is a note (into_volatile), not a dangling reference.
  bool memory_databases_unknown = false;
};

/// Databases::pack's options.
struct DatabasesPackOptions {
  /// After the pack's mark, before its copy (tests pause here; PackOptions::after_mark).
  std::function<void()> after_mark;
  /// Once the pack has taken its last word on references into the database (its commits
  /// paused; announcements wait from here to the end of the pack). For tests.
  std::function<void()> after_decision;
  int max_restarts = 3;
};

class Databases : public std::enable_shared_from_this<Databases> {
 public:
  static std::shared_ptr<Databases> create();
  Databases(const Databases&) = delete;
  Databases& operator=(const Databases&) = delete;

  /// Adds `db` under its name (DBOptions::name). The first database added is the default.
  /// Throws UsageError for a name already registered or a DB already in another registry.
  void add(std::shared_ptr<DB> db);
  /// The database named `name`; throws UsageError naming the registered ones.
  std::shared_ptr<DB> get(const std::string& name) const;
  /// The first database added; throws UsageError when there is none.
  std::shared_ptr<DB> default_database() const;
  /// The names, in the order added.
  std::vector<std::string> names() const;
  /// A connection to the default database (DB::open).
  ConnectionHandle open(ConnectionOptions options = {});

  using XrefPredicate = std::function<bool(const XrefCheck&)>;
  /// The registry's cross-database reference policy (for databases with `xrefs = check`),
  /// asked when the referring type has none.
  void set_xref_policy(XrefPredicate predicate);
  /// A predicate for referring objects of the type registered as `type_name` (asked when the
  /// object's check_xref() returns nullopt).
  void set_type_xref_policy(const std::string& type_name, XrefPredicate predicate);
  /// The seat belt's decision for a reference; nullopt when no policy decides.
  std::optional<bool> decide_xref(const Persistent* referrer, const XrefCheck& check) const;

  /// Held while a transaction finishes in two or more databases, and while a connection set
  /// takes its snapshots. Lock order: this before any storage or DB lock.
  std::mutex& commit_mutex() const noexcept { return commit_mutex_; }
  /// Copies every file storage of the registry into `directory` (created; must be empty)
  /// at one common point: the points are taken under the commit lock, so no transaction that
  /// finishes in two or more databases is half in the copy; commits go on during the copy.
  /// Writes `directory`/MANIFEST. Memory databases are not copied (listed as skipped).
  /// Copies of the files taken one by one are not mutually consistent: use this.
  DatabasesBackupReport backup(const std::string& directory) const;
  /// Walks every object of every database, decodes its references and reports the dangling
  /// ones and those the referrer's database forbids (xrefs = forbid; xrefs = check with the
  /// registry's predicates). Read-only.
  ReferenceCheckReport check_references(const ReferenceCheckOptions& options = {}) const;

  /// Every database's newest committed tid, taken under the commit lock.
  std::unordered_map<const DB*, Tid> snapshot_points() const;

  // --- multi-database pack (databases_pack.cpp) ---------------------------------------------
  /// Packs the file storage of database `name` as of `pack_tid` (FileStorage::pack), keeping
  /// every object another database of the registry references: a mark over all databases'
  /// current states from their roots finds the cross-database references into `name`, and
  /// references committed while the pack runs are kept too (connections announce them with
  /// note_xrefs before they prepare). The report's objects_kept_for_extra_roots says how many
  /// objects were kept only for those references. UsageError when `name` is not on a file
  /// storage.
  PackReport pack(const std::string& name, Tid pack_tid = kMaxTid,
                  DatabasesPackOptions options = {});
  /// Called by a connection before it prepares objects holding cross-database references
  /// (their targets), and released (release_xrefs) when its transaction ends. While a pack of
  /// a target's database is taking its last decision this waits; it throws
  /// DanglingReferenceError for a target the last pack of its database dropped (a
  /// transaction that held the object from before that pack).
  void note_xrefs(const void* who, const std::vector<std::pair<std::string, Oid>>& targets);
  void release_xrefs(const void* who) noexcept;

  struct PackWatches;  // databases_pack.cpp

 private:
  Databases();
  mutable std::mutex commit_mutex_;
  mutable std::mutex mutex_;  // the list (after commit_mutex_)
  std::vector<std::shared_ptr<DB>> dbs_;
  XrefPredicate policy_;
  std::unordered_map<std::string, XrefPredicate> type_policies_;
  std::shared_ptr<PackWatches> watches_;
};

/// The connections of one user to the databases of a registry (internal: kept by
/// Connection; not for application code).
class ConnectionSet {
 public:
  explicit ConnectionSet(std::shared_ptr<Databases> dbs) : databases_(std::move(dbs)) {}

  /// The tid `conn` moves its snapshot to: a point taken for every database at once, shared
  /// by the set's connections until one of them asks again.
  Tid snapshot_for(const Connection& conn);

  // The finish gate: connections that prepared in the current transaction.
  void prepared() noexcept { ++prepared_; }
  /// Before one participant's finish: takes the commit lock when two or more prepared.
  void before_finish();
  /// After one participant's finish (or abort of a prepared one).
  void after_finish() noexcept;
  /// The transaction ended: releases the commit lock if still held.
  void transaction_ended() noexcept;

  Databases& databases() const noexcept { return *databases_; }
  const std::shared_ptr<Databases>& databases_ptr() const noexcept { return databases_; }

 private:
  friend class Connection;
  std::shared_ptr<Databases> databases_;
  Connection* primary_ = nullptr;
  std::vector<ConnectionHandle> secondary_;  // opened by get_connection
  std::unordered_map<const DB*, Tid> points_;
  std::unordered_set<const Connection*> consumed_;
  int prepared_ = 0;
  // New objects placed by a reference (not by add()) in this transaction, and who placed them.
  std::unordered_map<const Persistent*, std::string> placed_by_;
  std::unique_lock<std::mutex> finishing_;
};

}  // namespace xact::objectstore
