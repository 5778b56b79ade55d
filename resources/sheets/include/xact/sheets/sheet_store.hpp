// SheetStore and SheetManager: property sheets on one SQL database.
//
// A SheetStore is the sheets of one database (one SqlResource: PostgreSQL, MySQL/MariaDB or
// SQLite). It holds the definitions, creates and extends their tables, and gives each
// transaction its SheetManager:
//
//   auto store = xact::sheets::SheetStore::create(pg);       // pg: a PostgresResource
//   store->define(dublin_core);                               // validated now
//   xact::run(tm, [&](xact::Transaction& txn) {
//     auto& sheets = store->manager(txn);
//     auto& s = sheets.create("dublin_core", {"main", 42});   // INSERT now: s.key() is known
//     s.set("title", "Ulysses");                              // written at commit
//     for (auto& o : sheets.find_owners("dublin_core", {.where = {{"title", Op::prefix, "Uly"}}}))
//       ...;
//   });
//
// Schema. The first use of a definition in the process (or ensure()) makes the table match it,
// on a connection of its own in a transaction of its own, before any branch uses the table
// (MySQL refuses DDL inside an XA branch; a PostgreSQL ALTER inside a branch would hold its lock
// until COMMIT PREPARED). It runs under a database-wide lock (pg_advisory_xact_lock, GET_LOCK,
// BEGIN IMMEDIATE), so processes doing the same at once agree: a missing table is created, a
// property missing from the table is added (ALTER TABLE ADD COLUMN with its default), and the
// definition is recorded in the catalog table xact_sheet_catalog. A property whose type or
// nullability differs from the catalog's, or a catalog property missing from the definition, is
// refused with SchemaMismatchError saying what differs and how to migrate.
//
// The table of a definition (columns per backend in doc/sheets.md):
//   sheet_id   generated key (IDENTITY / AUTO_INCREMENT / INTEGER PRIMARY KEY AUTOINCREMENT)
//   owner_db, owner_oid   the owning object (unique together, indexed)
//   version    bumped by every xact write; a trigger bumps it when an outside UPDATE leaves it
//   <one column per property>
//
// The SheetManager of a transaction is the identity map of its sheets and a branch extension of
// the store's SqlResource (<xact/sql/sql_resource.hpp>): its writes go to the transaction's own
// branch of the database, at the start of the resource's commit() step, before any participant
// prepares:
//   changed sheet   UPDATE t SET <changed>, version = version + 1
//                       WHERE sheet_id = ? AND version = <version read>
//   removed sheet   DELETE FROM t WHERE sheet_id = ? AND version = <version read>
// Zero rows is a ConflictError (retried by xact::run): someone else changed or removed the row
// since it was read, so an update is never lost. New sheets are inserted at create() (the key is
// generated in the branch at once). Nothing is written on abort or on a savepoint rollback (the
// cache goes back with it). MySQL's "table definition has changed" (1412) is retryable (the
// adapter's SerializationFailure).
//
// Thread-safety: a SheetStore is thread-safe (one per database per process). A SheetManager
// and its Sheets belong to their transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <xact/objectstore/connection.hpp>
#include <xact/sheets/definition.hpp>
#include <xact/sheets/sheet.hpp>
#include <xact/sql/sql_resource.hpp>
#include <xact/transaction.hpp>

namespace xact::sheets {

class SheetStore;

/// No sheet with that key (or for that owner) in the transaction's snapshot.
class SheetNotFoundError : public UsageError {
 public:
  using UsageError::UsageError;
};

/// One condition of a query on a property's value.
struct Condition {
  enum class Op { eq, ne, lt, le, gt, ge, prefix, is_null, not_null };
  std::string property;
  Op op = Op::eq;
  sql::Value value;  ///< unused for is_null / not_null; a Timestamp as int64 microseconds
};

struct Query {
  std::vector<Condition> where;  ///< all must hold
  /// Only owners in this object database ("" for any).
  std::string database;
  /// A property to order by ("" orders by sheet_id), then by sheet_id.
  std::string order_by;
  bool descending = false;
  std::optional<std::int64_t> limit;
};

class SheetManager final : public sql::BranchExtension {
 public:
  /// A new sheet for `owner`: INSERTs the row in the branch now (defaults for every property)
  /// and returns it with its generated key. SqlError when the owner already has this sheet.
  Sheet& create(std::string_view sheet, const Owner& owner);
  /// The sheet with `key`: loaded on first use, then cached. SheetNotFoundError when none.
  Sheet& get(std::string_view sheet, std::int64_t key);
  /// The owner's sheet (one query on first use), or null.
  Sheet* find(std::string_view sheet, const Owner& owner);
  /// The sheets of many owners of one database, in one query (per 500 owners); owners without
  /// the sheet are left out. Cached ones come from the cache.
  std::vector<Sheet*> load(std::string_view sheet, const std::string& database,
                           const std::vector<std::int64_t>& oids);
  /// Writes the pending changes now, in the branch (queries call it first).
  void flush();
  /// The owners whose sheet matches `query`, in order, through the branch after a flush (so
  /// the transaction's own changes count). `prefix` is LIKE 'value%' with % and _ escaped.
  std::vector<Owner> find_owners(std::string_view sheet, const Query& query);

  Transaction& transaction() const noexcept { return *txn_; }
  SheetStore& store() const noexcept { return *store_; }
  std::size_t cached() const noexcept { return sheets_.size(); }

  // --- sql::BranchExtension
  void before_vote(Transaction& txn, sql::SqlResource& resource) override;
  void rolled_back(Transaction& txn) noexcept override;
  std::function<void()> savepoint(Transaction& txn) override;

  SheetManager(std::shared_ptr<SheetStore> store, Transaction& txn);

 private:
  using Key = std::pair<std::string, std::int64_t>;  // sheet name, sheet_id
  Sheet& adopt(const std::shared_ptr<const SheetDefinition>& def, const sql::Row& row);
  sql::Result run(std::string_view sql, const sql::Params& params);
  void write_back();

  std::shared_ptr<SheetStore> store_;
  Transaction* txn_;
  std::map<Key, std::shared_ptr<Sheet>> sheets_;
  std::map<std::pair<std::string, Owner>, std::int64_t> by_owner_;
  // Sheets dropped from the map (rollback, deletion) stay alive until the transaction ends:
  // the application may still hold references to them.
  std::vector<std::shared_ptr<Sheet>> retired_;
};

class SheetStore : public std::enable_shared_from_this<SheetStore> {
 public:
  /// Asks the resource's pool for a connection to learn its dialect. Registers the store for
  /// the sheets it defines (for_sheet()).
  static std::shared_ptr<SheetStore> create(std::shared_ptr<sql::SqlResource> resource);
  ~SheetStore();

  /// Adds (or replaces, e.g. with a new property) a definition. Validates it now
  /// (SheetDefinitionError); the table is made to match at first use or ensure().
  void define(SheetDefinition def);
  /// Makes the table and catalog match the definition now (see the file comment). Throws
  /// SchemaMismatchError, or the database's error.
  void ensure(std::string_view sheet);
  /// The definition as the catalog records it (what another process defined), or nullopt.
  std::optional<SheetDefinition> stored_definition(std::string_view sheet);
  std::shared_ptr<const SheetDefinition> definition(std::string_view sheet) const;
  /// The definition, after ensure() has run for it in this process.
  std::shared_ptr<const SheetDefinition> ensured(std::string_view sheet);

  // --- migrations and maintenance (outside transactions) ---------------------------------------
  /// Copies property `from` into property `to` of every row, converted to `to`'s type by the
  /// database (CAST), in batches of `batch` keys, each batch a statement of its own on a
  /// connection of its own (no long lock). Both must be in the stored schema: define the new
  /// property and ensure() first. Each copied row's version is bumped, so a transaction that
  /// read it before gets a conflict instead of writing a stale value back. Returns the rows
  /// copied. The way to rename a property or change its type: add, copy, switch the code,
  /// drop_property the old one.
  std::int64_t copy_property(std::string_view sheet, std::string_view from, std::string_view to,
                             std::int64_t batch = 1000);
  /// Drops a property's column and its catalog row, under the schema lock. The definition must
  /// no longer have it (define() it without first): SchemaMismatchError otherwise.
  void drop_property(std::string_view sheet, std::string_view property);
  /// The owners of `sheet` rows of `conn`'s database whose object no longer exists in conn's
  /// snapshot (deleted objects, or packed away): what `xact sheets orphans` lists.
  std::vector<Owner> orphans(std::string_view sheet, objectstore::Connection& conn);

  // --- read-only inspection (tools: `xact sheets orphans`) -------------------------------------
  // These need no definition in this process and create nothing: no catalog, no table.
  /// The sheets the catalog (xact_sheet_catalog) records, by name; empty when the database has
  /// no catalog (no sheet was ever ensured there).
  std::vector<std::string> stored_sheets();
  /// One row of a sheet table: its key and its owner.
  struct StoredRow {
    std::int64_t key = 0;
    Owner owner;
  };
  /// Every row of `sheet` (a name stored_sheets() lists), ordered by owner database, oid and
  /// key. Throws SheetDefinitionError for a name that is not a valid identifier.
  std::vector<StoredRow> stored_rows(std::string_view sheet);

  /// txn's SheetManager (created on first use, joined to txn's branch of the resource).
  SheetManager& manager(Transaction& txn);
  SheetManager& manager();  ///< of the current transaction of current_manager()

  const std::shared_ptr<sql::SqlResource>& resource() const noexcept { return resource_; }
  /// "postgresql", "mysql", "sqlite".
  const std::string& dialect() const noexcept { return dialect_; }

  /// The store that defines `sheet` in this process (the most recently created one), or null.
  static std::shared_ptr<SheetStore> for_sheet(std::string_view sheet);

 private:
  explicit SheetStore(std::shared_ptr<sql::SqlResource> resource);
  void migrate(const SheetDefinition& def);
  void in_schema_transaction(std::string_view sheet,
                             const std::function<void(sql::Connection&)>& fn);

  std::shared_ptr<sql::SqlResource> resource_;
  std::string dialect_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const SheetDefinition>, std::less<>> defs_;
  std::set<std::string, std::less<>> ensured_;
};

}  // namespace xact::sheets
