#include <xact/sqlite/sqlite_resource.hpp>

#include <algorithm>
#include <cctype>
#include <mutex>

#include <xact/crash_point.hpp>
#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/log.hpp>
#include <xact/sqlite/errors.hpp>

namespace xact::sqlite {

namespace {

bool is_identifier(const std::string& s) {
  return !s.empty() && s.size() <= 64 &&
         (std::isalpha(static_cast<unsigned char>(s[0])) != 0 || s[0] == '_') &&
         std::all_of(s.begin(), s.end(),
                     [](unsigned char c) { return std::isalnum(c) != 0 || c == '_'; });
}

const std::string& checked_savepoint(const std::string& name) {
  if (!is_identifier(name)) {
    throw UsageError("sqlite: refusing to use '" + name + "' as a savepoint name");
  }
  return name;
}

std::string file_name_of(const std::string& path) {
  std::string p = path;
  if (p.rfind("file:", 0) == 0) {
    p = p.substr(5);
    if (const auto q = p.find('?'); q != std::string::npos) p.resize(q);
  }
  if (const auto slash = p.find_last_of('/'); slash != std::string::npos) p = p.substr(slash + 1);
  return p;
}

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

// Deletes forgotten markers on a connection of its own with synchronous=NORMAL: a deletion that
// a power loss undoes only keeps a marker longer, so it is not worth an fsync per transaction.
// Deletions are batched (kForgetBatch gtrids per DELETE) so that they take SQLite's write lock
// once per batch rather than once per transaction.
struct SqliteResource::Forgetter {
  std::mutex mutex;
  std::unique_ptr<SqliteConnection> conn;
  std::vector<std::string> pending;  // gtrid hex
};

namespace {
constexpr std::size_t kForgetBatch = 32;
}  // namespace

std::shared_ptr<SqliteResource> SqliteResource::create(SqliteOptions options) {
  if (options.path.empty() || options.path == ":memory:") {
    throw UsageError("SqliteOptions::path must name a database file (got '" + options.path +
                     "'): the last resource's commit must be durable, which an in-memory or "
                     "temporary database is not");
  }
  if (!is_identifier(options.decision_table)) {
    throw UsageError("SqliteOptions::decision_table '" + options.decision_table +
                     "' is not an identifier (letters, digits, _)");
  }
  std::string name = options.name.empty() ? "sqlite:" + file_name_of(options.path) : options.name;
  if (name.size() > Xid::kMaxBqual) {
    throw UsageError("the resource name '" + name + "' is longer than " +
                     std::to_string(Xid::kMaxBqual) + " bytes: give a shorter SqliteOptions::name");
  }
  check_branch_name(name);
  options.name = name;
  if (options.pool.name.empty() || options.pool.name == sql::PoolOptions().name) {
    options.pool.name = name;
  }
  const std::string context = "resource '" + name + "'";

  {
    // Creates the file if allowed, checks WAL + synchronous=FULL, creates the marker table.
    OpenOptions first{options.busy_timeout, options.create_if_missing};
    auto c = SqliteConnection::open(options.path, first, context);
    c->execute("CREATE TABLE IF NOT EXISTS " + options.decision_table +
               " (gtrid TEXT PRIMARY KEY,"        // the transaction's gtrid, hex
               " node TEXT NOT NULL,"             // the coordinator's node id, hex
               " epoch INTEGER NOT NULL,"         // of the coordinator run that committed
               " committed_us INTEGER NOT NULL,"  // µs since the Unix epoch
               " participants TEXT NOT NULL)"     // the prepared participants, for operators
               " WITHOUT ROWID");
  }

  const std::string path = options.path;
  const OpenOptions later{options.busy_timeout, false};
  auto pool = sql::ConnectionPool::create(
      [path, later, context]() -> std::unique_ptr<sql::Connection> {
        return SqliteConnection::open(path, later, context);
      },
      options.pool);
  return std::shared_ptr<SqliteResource>(
      new SqliteResource(std::move(name), std::move(options), std::move(pool)));
}

SqliteResource::SqliteResource(std::string name, SqliteOptions options,
                               std::shared_ptr<sql::ConnectionPool> pool)
    : SqlResource(name, std::move(pool)),
      options_(std::move(options)),
      forgetter_(std::make_unique<Forgetter>()) {
  const std::string& t = options_.decision_table;
  insert_marker_ = "INSERT INTO " + t +
                   " (gtrid, node, epoch, committed_us, participants) VALUES (?, ?, ?, ?, ?)";
  select_marker_ = "SELECT 1 FROM " + t + " WHERE gtrid = ?";
  delete_marker_ = "DELETE FROM " + t + " WHERE gtrid = ?";
  before_commit_point_ = name + ".before_commit";
  after_commit_point_ = name + ".after_commit";
}

SqliteResource::~SqliteResource() { flush_forgotten(); }

std::string SqliteResource::context() const { return "resource '" + resource_name() + "'"; }

SqliteConnection& SqliteResource::lite(sql::Connection& conn) const {
  auto* c = dynamic_cast<SqliteConnection*>(&conn);
  if (c == nullptr) {
    throw UsageError(context() + ": a connection of dialect '" + std::string(conn.dialect()) +
                     "' cannot serve an SQLite branch");
  }
  return *c;
}

void SqliteResource::enlist(Transaction& txn, sqlite3* connection) {
  enlist_connection(txn, SqliteConnection::borrow(connection, options_.busy_timeout, context()));
}

void SqliteResource::enlist(Transaction& txn, std::shared_ptr<SqliteConnection> connection) {
  enlist_connection(txn, std::move(connection));
}

std::unique_ptr<SqliteConnection> SqliteResource::open_connection() const {
  return SqliteConnection::open(options_.path, OpenOptions{options_.busy_timeout, false},
                                context());
}

// ---- the last resource -----------------------------------------------------------------------

void SqliteResource::commit_one_phase(Transaction& txn, const CommitRecord* decision) {
  if (decision == nullptr) {
    SqlResource::commit_one_phase(txn, nullptr);
    return;
  }
  // The decision goes into the branch's own transaction (begun here if the application ran
  // nothing in it), so it commits exactly when the branch does.
  SqliteConnection& c = lite(connection(txn));
  c.check_usable();
  if (!c.in_transaction()) {
    throw TransientError(context() +
                         ": SQLite ended this branch's transaction after an earlier error; "
                         "nothing was committed: retry the transaction");
  }
  std::string participants;
  for (const auto& p : decision->participants) {
    if (!participants.empty()) participants += ",";
    participants += p.resource;
  }
  const Gtrid& g = decision->gtrid;
  c.execute(insert_marker_, {g.to_hex(), g.node().to_hex(), static_cast<std::int64_t>(g.epoch()),
                             decision->time_us, participants});
  SqlResource::commit_one_phase(txn, nullptr);  // COMMIT (commit_branch)
}

DecisionStore::Lookup SqliteResource::lookup_decision(const Gtrid& gtrid) {
  try {
    sql::PooledConnection c = pool()->acquire();
    const sql::Result r = c->execute(select_marker_, {gtrid.to_hex()});
    return r.empty() ? Lookup::not_found : Lookup::committed;
  } catch (...) {
    // A database that cannot be opened or read may hold the decision: recovery waits.
    log(LogLevel::warning, context() + ": cannot read the decision markers (" +
                               what_of(std::current_exception()) +
                               "); recovery waits for them, it never presumes abort");
    return Lookup::unreadable;
  }
}

void SqliteResource::forget_decision(const Gtrid& gtrid) noexcept {
  std::lock_guard lock(forgetter_->mutex);
  try {
    forgetter_->pending.push_back(gtrid.to_hex());
  } catch (...) {
    return;  // out of memory: the marker stays until forget_decisions_before()
  }
  if (forgetter_->pending.size() >= kForgetBatch) flush_locked();
}

void SqliteResource::flush_forgotten() noexcept {
  std::lock_guard lock(forgetter_->mutex);
  flush_locked();
}

void SqliteResource::flush_locked() noexcept {
  Forgetter& f = *forgetter_;
  if (f.pending.empty()) return;
  try {
    if (!f.conn) {
      f.conn = open_connection();
      f.conn->run_protocol("PRAGMA synchronous=NORMAL", sql::Phase::statement);
    }
    sql::Params params;
    std::string in;
    for (const auto& hex : f.pending) {
      params.add(hex);
      in += in.empty() ? "?" : ", ?";
    }
    f.conn->execute("DELETE FROM " + options_.decision_table + " WHERE gtrid IN (" + in + ")",
                    params);
    f.pending.clear();
  } catch (...) {
    f.conn.reset();
    log(LogLevel::warning, context() + ": could not delete " + std::to_string(f.pending.size()) +
                               " decision markers (" + what_of(std::current_exception()) +
                               "); they stay until a later attempt or forget_decisions_before()");
    if (f.pending.size() > 16 * kForgetBatch) f.pending.clear();  // do not grow without bound
  }
}

std::size_t SqliteResource::forget_decisions_before(const NodeId& node, std::uint32_t epoch) {
  sql::PooledConnection c = pool()->acquire();
  const sql::Result r =
      c->execute("DELETE FROM " + options_.decision_table + " WHERE node = ? AND epoch < ?",
                 {node.to_hex(), static_cast<std::int64_t>(epoch)});
  return static_cast<std::size_t>(r.affected_rows());
}

std::vector<Gtrid> SqliteResource::decisions() {
  flush_forgotten();
  sql::PooledConnection c = pool()->acquire();
  std::vector<Gtrid> out;
  for (const auto& row : c->execute("SELECT gtrid FROM " + options_.decision_table)) {
    const std::string hex = row.get<std::string>(0);
    std::string raw;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
      raw.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    if (auto g = Gtrid::from_bytes(raw)) out.push_back(*g);
  }
  return out;
}

// ---- the dialect ------------------------------------------------------------------------------

void SqliteResource::begin_branch(sql::Connection& conn, const Xid&) {
  SqliteConnection& c = lite(conn);
  c.clear_poison();
  c.run_protocol(options_.begin == BeginMode::immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED",
                 sql::Phase::statement);
}

void SqliteResource::prepare_branch(sql::Connection&, const Xid&) {
  throw UsageError(context() + ": SQLite cannot prepare: it takes part only as the last resource");
}

void SqliteResource::commit_branch(sql::Connection& conn, const Xid&) {
  SqliteConnection& c = lite(conn);
  c.check_usable();
  if (!c.in_transaction()) {
    throw TransientError(context() +
                         ": SQLite ended this branch's transaction after an earlier error; "
                         "nothing was committed: retry the transaction");
  }
  XACT_CRASH_POINT(before_commit_point_);
  try {
    c.run_protocol("COMMIT", sql::Phase::statement);
  } catch (...) {
    // Still open (SQLITE_BUSY): it did not commit, and the caller rolls it back. Ended: SQLite
    // gave up in the middle of the commit, which may or may not be on disk.
    if (c.in_transaction()) throw;
    std::rethrow_exception(sqlite::map_error(c.last_error_code(), c.last_error_message(),
                                             sql::Phase::commit_one_phase, context()));
  }
  XACT_CRASH_POINT(after_commit_point_);
}

void SqliteResource::rollback_branch(sql::Connection& conn, const Xid&) {
  SqliteConnection& c = lite(conn);
  c.clear_poison();
  if (c.in_transaction()) c.run_protocol("ROLLBACK", sql::Phase::rollback);
}

void SqliteResource::commit_prepared_branch(sql::Connection&, const Xid& xid) {
  throw sql::UnknownIdError(context() + ": SQLite holds no prepared branch (" + xid.to_gid() + ")");
}

void SqliteResource::rollback_prepared_branch(sql::Connection&, const Xid& xid) {
  throw sql::UnknownIdError(context() + ": SQLite holds no prepared branch (" + xid.to_gid() + ")");
}

std::vector<Xid> SqliteResource::prepared_branches(sql::Connection&) { return {}; }

void SqliteResource::set_savepoint(sql::Connection& conn, const std::string& name) {
  SqliteConnection& c = lite(conn);
  c.check_usable();
  c.run_protocol("SAVEPOINT " + checked_savepoint(name), sql::Phase::statement);
}

void SqliteResource::rollback_to_savepoint(sql::Connection& conn, const std::string& name) {
  lite(conn).run_protocol("ROLLBACK TO SAVEPOINT " + checked_savepoint(name),
                          sql::Phase::statement);
}

std::exception_ptr SqliteResource::map_error(const std::exception_ptr& error,
                                             sql::Phase) const noexcept {
  // The connection maps every SQLite result code where it happens (sqlite::map_error, which
  // needs the code and message): what reaches here is already xact's.
  return error;
}

}  // namespace xact::sqlite
