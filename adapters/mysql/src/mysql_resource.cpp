#include <xact/mysql/mysql_resource.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include <boost/algorithm/hex.hpp>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/mysql/errors.hpp>

namespace xact::mysql {

namespace {

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

// Savepoint names are xact's own ("xact_sp_<n>"); anything else is refused, not spliced.
const std::string& checked_savepoint(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 64 &&
                  std::all_of(name.begin(), name.end(),
                              [](unsigned char c) { return std::isalnum(c) != 0 || c == '_'; });
  if (!ok) throw UsageError("mysql: refusing to use '" + name + "' as a savepoint name");
  return name;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The process-wide table of sessions that hold a prepared branch (see the header): any instance
// of any resource can finish a branch that another instance prepared in this process. Leaked on
// purpose: at exit the sessions simply close (which detaches their branches on the server).
struct Parked {
  std::mutex mutex;
  std::map<std::string, std::unique_ptr<MySqlConnection>> sessions;  // by xa_xid()
};
Parked& parked() {
  static Parked* p = new Parked;
  return *p;
}

constexpr std::chrono::milliseconds kAttachedPatience{5000};

}  // namespace

std::string xa_xid(const Xid& xid) {
  if (xid.gtrid.empty() || xid.bqual.empty() || xid.bqual.size() > Xid::kMaxBqual) {
    throw UsageError("mysql: not a complete transaction id (empty gtrid or bqual)");
  }
  return "X'" + hex(xid.gtrid.bytes()) + "',X'" + hex(xid.bqual) + "'," +
         std::to_string(xid.format_id);
}

std::optional<Xid> xid_in_xa_statement(std::string_view text, std::string_view verb) {
  // verb X'<hex>',X'<hex>',<digits>
  const auto hex_literal = [&text](std::string_view prefix) -> std::optional<std::string> {
    if (text.substr(0, prefix.size()) != prefix) return std::nullopt;
    text.remove_prefix(prefix.size());
    const auto end = text.find('\'');
    if (end == std::string_view::npos) return std::nullopt;
    std::string bytes;
    try {
      boost::algorithm::unhex(text.begin(), text.begin() + end, std::back_inserter(bytes));
    } catch (const boost::algorithm::hex_decode_error&) {
      return std::nullopt;
    }
    text.remove_prefix(end + 1);
    return bytes;
  };
  const auto gtrid = hex_literal(std::string(verb) + "X'");
  if (!gtrid) return std::nullopt;
  const auto bqual = hex_literal(",X'");
  if (!bqual || text.substr(0, 1) != ",") return std::nullopt;
  text.remove_prefix(1);
  std::uint32_t format_id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), format_id);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  return Xid::from_xa(format_id, *gtrid + *bqual, gtrid->size(), bqual->size());
}

bool is_transactional_engine(std::string_view engine) noexcept {
  const std::string e = lower(engine);
  return e == "innodb" || e == "rocksdb" || e == "tokudb" || e == "ndbcluster" || e == "ndb";
}

void require_transactional(sql::Connection& conn, std::string_view table) {
  std::optional<std::string> schema;
  std::string name(table);
  if (const auto dot = name.find('.'); dot != std::string::npos) {
    schema = name.substr(0, dot);
    name = name.substr(dot + 1);
  }
  const sql::Result r = conn.execute(
      "SELECT ENGINE, TABLE_TYPE, TABLE_SCHEMA FROM information_schema.TABLES "
      "WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
      {schema, name});
  if (r.empty()) {
    throw UsageError("table '" + std::string(table) +
                     "' does not exist (in information_schema.TABLES): create it with "
                     "ENGINE=InnoDB before xact uses it");
  }
  const auto engine = r[0].get<std::optional<std::string>>("ENGINE");
  const auto type = r[0].get<std::optional<std::string>>("TABLE_TYPE");
  if (!engine) {
    throw UsageError("'" + std::string(table) + "' is a " + lower(type.value_or("table")) +
                     " without a storage engine of its own: check the engines of its base "
                     "tables instead");
  }
  if (!is_transactional_engine(*engine)) {
    throw UsageError("table '" + std::string(table) + "' uses the " + *engine +
                     " engine, which is not transactional: it ignores ROLLBACK, so what a "
                     "rolled-back xact transaction wrote there would stay. Convert it (ALTER "
                     "TABLE " +
                     std::string(table) +
                     " ENGINE=InnoDB) or keep it out of "
                     "transactions that need rollback");
  }
}

std::shared_ptr<MySqlResource> MySqlResource::create(MySqlOptions options) {
  if (options.connect.user.empty()) throw UsageError("MySqlOptions::connect.user is empty");
  if (options.connect.database.empty()) {
    // The resource name, and with it recovery, depends on the database: name it on purpose.
    throw UsageError("MySqlOptions::connect.database is empty: give the database");
  }
  std::string name = options.name.empty() ? "mysql:" + options.connect.database : options.name;
  if (name.size() > Xid::kMaxBqual) {
    throw UsageError("the resource name '" + name + "' is longer than " +
                     std::to_string(Xid::kMaxBqual) + " bytes: give a shorter MySqlOptions::name");
  }
  check_branch_name(name);
  options.name = name;
  if (options.pool.name.empty() || options.pool.name == sql::PoolOptions().name) {
    options.pool.name = name;
  }
  const ConnectOptions connect = options.connect;
  const std::string context = "resource '" + name + "'";
  auto pool = sql::ConnectionPool::create(
      [connect, context]() -> std::unique_ptr<sql::Connection> {
        auto c = MySqlConnection::open(connect, context);
        c->set_pooled();
        return c;
      },
      options.pool);
  return std::shared_ptr<MySqlResource>(
      new MySqlResource(std::move(name), std::move(options), std::move(pool)));
}

MySqlResource::MySqlResource(std::string name, MySqlOptions options,
                             std::shared_ptr<sql::ConnectionPool> pool)
    : SqlResource(std::move(name), std::move(pool)), options_(std::move(options)) {}

std::string MySqlResource::context() const { return "resource '" + resource_name() + "'"; }

MySqlConnection& MySqlResource::my(sql::Connection& conn) const {
  auto* c = dynamic_cast<MySqlConnection*>(&conn);
  if (c == nullptr) {
    throw UsageError(context() + ": a connection of dialect '" + std::string(conn.dialect()) +
                     "' cannot serve a MySQL branch");
  }
  return *c;
}

void MySqlResource::enlist(Transaction& txn, ::sql::Connection& connection) {
  enlist_connection(txn,
                    MySqlConnection::borrow(connection, options_.connect.isolation, context()));
}

void MySqlResource::enlist(Transaction& txn, std::shared_ptr<MySqlConnection> connection) {
  enlist_connection(txn, std::move(connection));
}

void MySqlResource::require_transactional(std::string_view table) {
  sql::PooledConnection c = pool()->acquire();
  mysql::require_transactional(*c, table);
}

std::unique_ptr<MySqlConnection> MySqlResource::open_connection() const {
  return MySqlConnection::open(options_.connect, context());
}

void MySqlResource::begin_branch(sql::Connection& conn, const Xid& xid) {
  MySqlConnection& c = my(conn);
  c.clear_poison();
  const std::string start = "XA START " + xa_xid(xid);
  try {
    c.run_protocol(start, sql::Phase::statement);
  } catch (const sql::ConnectionLost&) {
    // Lost while idle in the pool (a server restart): nothing of the branch exists yet, so a
    // connection xact opened itself can be replaced and the branch begun again.
    if (!c.can_reconnect()) throw;
    c.reconnect();
    c.run_protocol(start, sql::Phase::statement);
  }
}

void MySqlResource::prepare_branch(sql::Connection& conn, const Xid& xid) {
  MySqlConnection& c = my(conn);
  c.check_usable();  // a deadlocked branch is gone: say so without another statement
  const std::string id = xa_xid(xid);
  c.run_protocol("XA END " + id, sql::Phase::prepare);
  c.run_protocol("XA PREPARE " + id, sql::Phase::prepare);
  if (!c.can_reconnect()) return;  // an enlisted connection: phase 2 runs on it
  // Park the session that holds the prepared branch; the pooled connection goes on with a spare.
  std::unique_ptr<MySqlConnection> holder;
  {
    std::lock_guard lock(spares_mutex_);
    if (!spares_.empty()) {
      holder = std::move(spares_.back());
      spares_.pop_back();
    }
  }
  if (!holder) holder = MySqlConnection::lazy(options_.connect, context());
  c.swap_session(*holder);
  std::lock_guard lock(parked().mutex);
  parked().sessions[id] = std::move(holder);
}

void MySqlResource::finish(sql::Connection& conn, const Xid& xid, bool commit) {
  const std::string id = xa_xid(xid);
  std::unique_ptr<MySqlConnection> holder;
  {
    std::lock_guard lock(parked().mutex);
    auto it = parked().sessions.find(id);
    if (it != parked().sessions.end()) {
      holder = std::move(it->second);
      parked().sessions.erase(it);
    }
  }
  if (holder) {
    try {
      holder->run_protocol((commit ? "XA COMMIT " : "XA ROLLBACK ") + id,
                           commit ? sql::Phase::commit_prepared : sql::Phase::rollback_prepared);
      std::lock_guard lock(spares_mutex_);
      if (spares_.size() < options_.pool.max_size) spares_.push_back(std::move(holder));
      return;
    } catch (const sql::ConnectionLost&) {
      holder.reset();  // its session ends, which detaches the branch: finish it by id below
    } catch (...) {
      std::lock_guard lock(parked().mutex);
      parked().sessions[id] = std::move(holder);
      throw;
    }
  }
  my(conn).finish_by_id(id, xid, commit, kAttachedPatience);
}

void MySqlResource::commit_branch(sql::Connection& conn, const Xid& xid) {
  MySqlConnection& c = my(conn);
  c.check_usable();
  const std::string id = xa_xid(xid);
  // A connection lost at XA END leaves an unprepared branch, which the server rolls back: a
  // definite failure. At the commit itself the outcome is unknown (InDoubtError).
  c.run_protocol("XA END " + id, sql::Phase::rollback);
  c.run_protocol("XA COMMIT " + id + " ONE PHASE", sql::Phase::commit_one_phase);
}

void MySqlResource::rollback_branch(sql::Connection& conn, const Xid& xid) {
  MySqlConnection& c = my(conn);
  const std::string id = xa_xid(xid);
  c.clear_poison();
  // The branch may be active (end it), already ended (a prepare that failed), or already
  // rolled back by the server (a deadlock): each step tolerates what it finds.
  try {
    c.run_protocol("XA END " + id, sql::Phase::rollback);
  } catch (const sql::ConnectionLost&) {
    throw;
  } catch (const xact::Error&) {
    // not active any more (XAER_RMFAIL, XA_RB*, XAER_NOTA): go on to the rollback
  }
  try {
    c.run_protocol("XA ROLLBACK " + id, sql::Phase::rollback);
  } catch (const sql::SqlError& e) {
    if (e.native_code() != code::kXaNota) throw;  // already gone: rolled back
  } catch (const TransientError&) {
    // XA_RBROLLBACK, XA_RBDEADLOCK, XA_RBTIMEOUT: the server had rolled it back
  }
}

void MySqlResource::commit_prepared_branch(sql::Connection& conn, const Xid& xid) {
  finish(conn, xid, /*commit=*/true);
}

void MySqlResource::rollback_prepared_branch(sql::Connection& conn, const Xid& xid) {
  try {
    finish(conn, xid, /*commit=*/false);
  } catch (const TransientError&) {
    // XA_RB*: the prepared branch is rolled back, which is what was asked
  }
}

bool MySqlResource::server_session_running(sql::Connection& conn, const std::string& session) {
  // MySqlConnection::server_session(): "id=N host=H".
  const auto host_at = session.find(" host=");
  std::int64_t id = 0;
  if (session.rfind("id=", 0) == 0 && host_at != std::string::npos) {
    try {
      id = std::stoll(session.substr(3, host_at - 3));
    } catch (const std::exception&) {
      id = 0;
    }
  }
  if (id <= 0)
    throw ResourceError(context() + ": cannot read the server session '" + session + "'");
  const std::string host = session.substr(host_at + 6);
  MySqlConnection& c = my(conn);
  const auto running = [&] {
    return !c.execute("SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = $1 AND HOST = $2",
                      {id, host})
                .empty();
  };
  if (!running()) return false;
  if (host.find(':') == std::string::npos) return true;
  // The session of a lost connection has nothing more to do for anyone: end it rather than
  // wait until it notices its client is gone (a half-open TCP connection can take hours), and
  // give it a moment to go.
  try {
    c.run_protocol("KILL CONNECTION " + std::to_string(id), sql::Phase::statement);
  } catch (const sql::ConnectionLost&) {
    throw;
  } catch (const xact::Error&) {
    // ended meanwhile (unknown thread id): the next look says so
  }
  for (int look = 0; look < 50; ++look) {
    if (!running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::vector<sql::SqlResource::PreparingSession> MySqlResource::sessions_preparing(
    sql::Connection& conn) {
  static constexpr std::string_view kPrepare = "XA PREPARE ";  // prepare_branch's statement
  const sql::Result r = my(conn).execute(
      "SELECT ID, HOST, INFO FROM information_schema.PROCESSLIST WHERE "
      "ID <> CONNECTION_ID() AND COMMAND = 'Query' AND INFO LIKE 'XA PREPARE %'");
  std::vector<PreparingSession> out;
  for (const auto& row : r) {
    if (auto xid = xid_in_xa_statement(row.get<std::string>(2), kPrepare)) {
      out.push_back({std::move(*xid), MySqlConnection::session_name(row.get<std::uint64_t>(0),
                                                                    row.get<std::string>(1))});
    }
  }
  return out;
}

std::vector<Xid> MySqlResource::prepared_branches(sql::Connection& conn) {
  std::vector<Xid> out;
  for (const auto& row : my(conn).xa_recover()) {
    if (row.format_id < 0 || row.gtrid_length < 0 || row.bqual_length < 0) continue;
    auto xid = Xid::from_xa(static_cast<std::uint32_t>(row.format_id), row.data,
                            static_cast<std::size_t>(row.gtrid_length),
                            static_cast<std::size_t>(row.bqual_length));
    if (xid) out.push_back(std::move(*xid));  // others' branches are skipped
  }
  return out;
}

void MySqlResource::set_savepoint(sql::Connection& conn, const std::string& name) {
  MySqlConnection& c = my(conn);
  c.check_usable();
  c.run_protocol("SAVEPOINT " + checked_savepoint(name), sql::Phase::statement);
}

void MySqlResource::rollback_to_savepoint(sql::Connection& conn, const std::string& name) {
  MySqlConnection& c = my(conn);
  if (c.deadlocked()) c.check_usable();  // the server rolled everything back: no savepoint left
  c.run_protocol("ROLLBACK TO SAVEPOINT " + checked_savepoint(name), sql::Phase::statement);
  c.clear_poison(/*lock_timeout_only=*/true);
}

std::exception_ptr MySqlResource::map_error(const std::exception_ptr& error,
                                            sql::Phase phase) const noexcept {
  try {
    return mysql::map_error(error, phase, context());
  } catch (...) {
    return error;
  }
}

}  // namespace xact::mysql
