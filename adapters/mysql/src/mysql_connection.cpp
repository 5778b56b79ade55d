#include <xact/mysql/mysql_connection.hpp>

#include <cstdio>

#include <climits>
#include <cstdint>
#include <iterator>
#include <limits>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

#include <cppconn/connection.h>
#include <cppconn/datatype.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/resultset_metadata.h>
#include <cppconn/statement.h>
#include <mysql_driver.h>

#include <xact/errors.hpp>
#include <xact/mysql/errors.hpp>
#include <xact/sql/placeholders.hpp>

namespace xact::mysql {

namespace {

constexpr std::size_t kStatementCacheSize = 64;

::sql::Driver& driver() {
  // The first call initializes the client library, which is not thread-safe: a function-local
  // static makes it happen once.
  static ::sql::Driver* d = ::sql::mysql::get_mysql_driver_instance();
  return *d;
}

std::string isolation_sql(Isolation isolation) {
  return isolation == Isolation::serializable
             ? "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE"
             : "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ";
}

std::string read_stream(std::istream* in) {
  std::unique_ptr<std::istream> owned(in);
  if (!owned) return {};
  return std::string(std::istreambuf_iterator<char>(*owned), std::istreambuf_iterator<char>());
}

// MySqlConnection::server_session() of the connection `st` runs on. The client's address and
// port, as the server lists it, tell this session from one that got the same id after a server
// restart. A server without the table (MySQL may drop it some day) leaves the session unnamed:
// a lost PREPARE is then final at once.
std::string read_session(::sql::Statement& st) {
  try {
    std::unique_ptr<::sql::ResultSet> rs(st.executeQuery(
        "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"));
    if (rs->next()) {
      return MySqlConnection::session_name(rs->getUInt64(1), rs->getString(2).asStdString());
    }
  } catch (const ::sql::SQLException& e) {
    if (is_connection_lost(e.getErrorCode())) throw;
  }
  return {};
}

}  // namespace

std::string_view to_string(Isolation isolation) {
  return isolation == Isolation::serializable ? "SERIALIZABLE" : "REPEATABLE READ";
}

struct MySqlConnection::Impl {
  std::unique_ptr<::sql::Connection> owned;
  ::sql::Connection* conn = nullptr;
  std::optional<ConnectOptions> options;  // set when xact opened it (so it can reconnect)
  bool pooled = false;                    // made by a resource's pool: may reconnect
  std::string context;
  std::string session;  // see server_session(); set by connect() and borrow()
  bool broken = false;
  std::exception_ptr poison;  // the deadlock or lock wait timeout that ended the branch's use
  bool poison_is_deadlock = false;

  struct Cached {
    std::unique_ptr<::sql::PreparedStatement> stmt;
    sql::TranslatedSql translated;  // $n -> ? and the parameter order, once per statement
    std::uint64_t used = 0;
    // MariaDB's INSERT/DELETE ... RETURNING: rows, though the prepared statement's metadata
    // announces no columns.
    bool returning = false;
  };
  std::unordered_map<std::string, Cached> statements;
  std::uint64_t tick = 0;

  Cached& prepared(std::string_view sql) {
    auto it = statements.find(std::string(sql));
    if (it == statements.end()) {
      if (statements.size() >= kStatementCacheSize) {
        auto oldest = statements.begin();
        for (auto i = statements.begin(); i != statements.end(); ++i) {
          if (i->second.used < oldest->second.used) oldest = i;
        }
        statements.erase(oldest);
      }
      Cached c;
      c.translated = sql::translate_placeholders(sql, sql::PlaceholderStyle::positional_question);
      c.stmt.reset(conn->prepareStatement(::sql::SQLString(c.translated.sql)));
      c.returning = sql.find(" RETURNING ") != std::string_view::npos;
      it = statements.emplace(std::string(sql), std::move(c)).first;
    }
    it->second.used = ++tick;
    return it->second;
  }

  // Maps a failure of a statement, noting what it says about the connection and the branch.
  [[noreturn]] void fail(sql::Phase phase) {
    int native = 0;
    try {
      throw;
    } catch (const ::sql::InvalidInstanceException&) {
      broken = true;
    } catch (const ::sql::SQLException& e) {
      native = e.getErrorCode();
    } catch (...) {
    }
    std::exception_ptr mapped = map_error(std::current_exception(), phase, context);
    if (is_connection_lost(native)) broken = true;
    if (phase == sql::Phase::statement) {
      if (native == code::kDeadlock || native == code::kXaRbdeadlock) {
        poison = mapped;
        poison_is_deadlock = true;
      } else if ((native == code::kLockWaitTimeout || native == code::kLockNowait) && !poison) {
        poison = mapped;
      }
    }
    std::rethrow_exception(mapped);
  }

  void ensure_connected() {
    if (conn == nullptr && !broken && options) connect();
  }

  void connect() {
    const ConnectOptions& o = *options;
    ::sql::ConnectOptionsMap m;
    if (!o.unix_socket.empty()) {
      m["socket"] = ::sql::SQLString(o.unix_socket);
      m["hostName"] = ::sql::SQLString("localhost");
    } else {
      m["hostName"] = ::sql::SQLString(o.host);
      m["port"] = static_cast<int>(o.port);
    }
    m["userName"] = ::sql::SQLString(o.user);
    m["password"] = ::sql::SQLString(o.password);
    if (!o.database.empty()) m["schema"] = ::sql::SQLString(o.database);
    m["OPT_RECONNECT"] = false;
    m["OPT_CHARSET_NAME"] = ::sql::SQLString("utf8mb4");
    m["OPT_CONNECT_TIMEOUT"] = static_cast<int>(o.connect_timeout.count());
    if (o.read_timeout.count() > 0)
      m["OPT_READ_TIMEOUT"] = static_cast<int>(o.read_timeout.count());
    statements.clear();
    owned.reset();
    conn = nullptr;
    try {
      owned.reset(driver().connect(m));
      conn = owned.get();
      std::unique_ptr<::sql::Statement> st(conn->createStatement());
      st->execute(::sql::SQLString(isolation_sql(o.isolation)));
      if (o.lock_wait_timeout) {
        const long long s = std::max<long long>(1, o.lock_wait_timeout->count());
        st->execute(
            ::sql::SQLString("SET SESSION innodb_lock_wait_timeout = " + std::to_string(s)));
      }
      session = read_session(*st);
    } catch (...) {
      owned.reset();
      conn = nullptr;
      broken = true;
      std::rethrow_exception(map_error(std::current_exception(), sql::Phase::connect, context));
    }
    broken = false;
    poison = nullptr;
    poison_is_deadlock = false;
  }
};

MySqlConnection::MySqlConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MySqlConnection::~MySqlConnection() {
  try {
    impl_->statements.clear();
    if (impl_->owned) impl_->owned->close();
  } catch (...) {
    // Closing a connection that is already gone: nothing to do.
  }
}

std::unique_ptr<MySqlConnection> MySqlConnection::open(const ConnectOptions& options,
                                                       std::string context) {
  if (options.user.empty()) throw UsageError(context + ": ConnectOptions::user is empty");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->context = std::move(context);
  impl->connect();
  return std::unique_ptr<MySqlConnection>(new MySqlConnection(std::move(impl)));
}

std::shared_ptr<MySqlConnection> MySqlConnection::borrow(::sql::Connection& native,
                                                         Isolation isolation, std::string context) {
  auto impl = std::make_unique<Impl>();
  impl->conn = &native;
  impl->context = std::move(context);
  try {
    bool off = false;
    native.setClientOption("MYSQL_OPT_RECONNECT", &off);
    std::unique_ptr<::sql::Statement> st(native.createStatement());
    st->execute(::sql::SQLString(isolation_sql(isolation)));
    impl->session = read_session(*st);
  } catch (...) {
    std::rethrow_exception(map_error(std::current_exception(), sql::Phase::connect, impl->context));
  }
  return std::shared_ptr<MySqlConnection>(new MySqlConnection(std::move(impl)));
}

sql::Result MySqlConnection::execute(std::string_view text, const sql::Params& params) {
  Impl& d = *impl_;
  d.ensure_connected();
  if (d.broken || d.conn == nullptr) {
    throw sql::ConnectionLost(d.context +
                              ": the connection to MySQL was lost earlier; the "
                              "branch was rolled back by the server");
  }
  check_usable();
  try {
    Impl::Cached& cached = d.prepared(text);
    ::sql::PreparedStatement& ps = *cached.stmt;
    const sql::Params bound = sql::bind_in_order(cached.translated, params, d.context);
    ps.clearParameters();
    std::vector<std::unique_ptr<std::istringstream>> blobs;
    unsigned i = 0;
    for (const sql::Value& v : bound) {
      ++i;
      if (v.is_null()) {
        ps.setNull(i, ::sql::DataType::VARCHAR);
      } else if (const auto* n = v.if_int64()) {
        ps.setInt64(i, *n);
      } else if (const auto* x = v.if_double()) {
        ps.setDouble(i, *x);
      } else if (const auto* s = v.if_text()) {
        ps.setString(i, ::sql::SQLString(*s));
      } else if (const auto* b = v.if_bytes()) {
        blobs.push_back(std::make_unique<std::istringstream>(
            std::string(reinterpret_cast<const char*>(b->data()), b->size())));
        ps.setBlob(i, blobs.back().get());
      } else if (const auto* f = v.if_bool()) {
        ps.setBoolean(i, *f);
      }
    }
    // Connector/C++ 1.1 implements no getUpdateCount() for prepared statements: the statement's
    // result metadata says whether it returns rows (executeQuery) or a count (executeUpdate).
    if (!cached.returning && ps.getMetaData()->getColumnCount() == 0) {
      const int n = ps.executeUpdate();
      return sql::Result({}, n < 0 ? 0 : n);
    }
    std::unique_ptr<::sql::ResultSet> rs(ps.executeQuery());
    ::sql::ResultSetMetaData* md = rs->getMetaData();
    const unsigned ncols = md->getColumnCount();
    std::vector<std::string> names;
    std::vector<int> types;
    std::vector<bool> is_signed;
    for (unsigned c = 1; c <= ncols; ++c) {
      names.push_back(md->getColumnLabel(c).asStdString());
      types.push_back(md->getColumnType(c));
      is_signed.push_back(md->isSigned(c));
    }
    sql::Result result(std::move(names), 0);
    while (rs->next()) {
      std::vector<sql::Value> row;
      row.reserve(ncols);
      for (unsigned c = 1; c <= ncols; ++c) {
        if (rs->isNull(c)) {
          row.emplace_back();
          continue;
        }
        switch (types[c - 1]) {
          case ::sql::DataType::BIT:
          case ::sql::DataType::TINYINT:
          case ::sql::DataType::SMALLINT:
          case ::sql::DataType::MEDIUMINT:
          case ::sql::DataType::INTEGER:
          case ::sql::DataType::BIGINT:
          case ::sql::DataType::YEAR:
            if (!is_signed[c - 1]) {
              const std::uint64_t u = rs->getUInt64(c);
              if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                row.emplace_back(std::to_string(u));
              } else {
                row.emplace_back(static_cast<std::int64_t>(u));
              }
            } else {
              row.emplace_back(static_cast<std::int64_t>(rs->getInt64(c)));
            }
            break;
          case ::sql::DataType::REAL:
          case ::sql::DataType::DOUBLE:
            row.emplace_back(static_cast<double>(rs->getDouble(c)));
            break;
          case ::sql::DataType::BINARY:
          case ::sql::DataType::VARBINARY:
          case ::sql::DataType::LONGVARBINARY: {
            const std::string raw = read_stream(rs->getBlob(c));
            row.emplace_back(sql::Bytes(raw.begin(), raw.end()));
            break;
          }
          default: row.emplace_back(rs->getString(c).asStdString()); break;
        }
      }
      result.add_row(std::move(row));
    }
    return result;
  } catch (const xact::Error&) {
    throw;
  } catch (...) {
    d.fail(sql::Phase::statement);
  }
}

void MySqlConnection::run_protocol(const std::string& text, sql::Phase phase) {
  Impl& d = *impl_;
  d.ensure_connected();
  if (d.broken || d.conn == nullptr) {
    std::rethrow_exception(
        map_error(std::make_exception_ptr(::sql::SQLException("the connection was lost earlier",
                                                              "HY000", code::kServerGone)),
                  phase, d.context));
  }
  try {
    std::unique_ptr<::sql::Statement> st(d.conn->createStatement());
    st->execute(::sql::SQLString(text));
  } catch (...) {
    d.fail(phase);
  }
}

std::vector<MySqlConnection::XaRow> MySqlConnection::xa_recover() {
  Impl& d = *impl_;
  d.ensure_connected();
  if (d.broken || d.conn == nullptr) {
    throw sql::ConnectionLost(d.context + ": the connection to MySQL was lost earlier");
  }
  std::vector<XaRow> rows;
  try {
    std::unique_ptr<::sql::Statement> st(d.conn->createStatement());
    std::unique_ptr<::sql::ResultSet> rs(st->executeQuery("XA RECOVER"));
    while (rs->next()) {
      XaRow r;
      r.format_id = rs->getInt64("formatID");
      r.gtrid_length = rs->getInt64("gtrid_length");
      r.bqual_length = rs->getInt64("bqual_length");
      // data is binary (gtrid bytes then bqual bytes): read it as a stream of bytes.
      r.data = read_stream(rs->getBlob("data"));
      rows.push_back(std::move(r));
    }
  } catch (...) {
    d.fail(sql::Phase::recover);
  }
  return rows;
}

void MySqlConnection::check_usable() const {
  if (impl_->poison) std::rethrow_exception(impl_->poison);
}

void MySqlConnection::clear_poison(bool lock_timeout_only) noexcept {
  if (lock_timeout_only && impl_->poison_is_deadlock) return;
  impl_->poison = nullptr;
  impl_->poison_is_deadlock = false;
}

bool MySqlConnection::deadlocked() const noexcept { return impl_->poison_is_deadlock; }

bool MySqlConnection::can_reconnect() const noexcept {
  return impl_->pooled && impl_->options.has_value();
}

void MySqlConnection::set_pooled() noexcept { impl_->pooled = true; }

std::unique_ptr<MySqlConnection> MySqlConnection::lazy(const ConnectOptions& options,
                                                       std::string context) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->context = std::move(context);
  impl->pooled = true;
  return std::unique_ptr<MySqlConnection>(new MySqlConnection(std::move(impl)));
}

void MySqlConnection::swap_session(MySqlConnection& other) noexcept {
  std::swap(impl_, other.impl_);
}

void MySqlConnection::finish_by_id(const std::string& xa_id, const Xid& xid, bool commit,
                                   std::chrono::milliseconds patience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  const std::string statement = (commit ? "XA COMMIT " : "XA ROLLBACK ") + xa_id;
  const sql::Phase phase = commit ? sql::Phase::commit_prepared : sql::Phase::rollback_prepared;
  for (;;) {
    try {
      run_protocol(statement, phase);
      return;
    } catch (const sql::UnknownIdError&) {
      bool listed = false;
      for (const auto& row : xa_recover()) {
        if (row.format_id < 0 || row.gtrid_length < 0 || row.bqual_length < 0) continue;
        const auto x = Xid::from_xa(static_cast<std::uint32_t>(row.format_id), row.data,
                                    static_cast<std::size_t>(row.gtrid_length),
                                    static_cast<std::size_t>(row.bqual_length));
        if (x && *x == xid) listed = true;
      }
      if (!listed) throw;  // really unknown: finished already
      if (std::chrono::steady_clock::now() >= deadline) {
        throw sql::ConnectionLost(
            impl_->context + ": " + xid.to_gid() +
            " is prepared but still attached to another session (MariaDB hands a prepared XA "
            "branch over only when the session that prepared it ends); it stays prepared and "
            "recovery finishes it");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

void MySqlConnection::reconnect() { impl_->connect(); }

std::string MySqlConnection::server_session() const { return impl_->session; }

std::string MySqlConnection::session_name(std::uint64_t id, std::string_view host) {
  return "id=" + std::to_string(id) + " host=" + std::string(host);
}

const std::string& MySqlConnection::context() const noexcept { return impl_->context; }

bool MySqlConnection::looks_alive() noexcept {
  Impl& d = *impl_;
  if (!d.broken && d.conn == nullptr && d.options) return true;  // connects on first use
  if (d.broken || d.conn == nullptr) return false;
  try {
    if (d.conn->isClosed()) d.broken = true;
  } catch (...) {
    d.broken = true;
  }
  return !d.broken;
}

bool MySqlConnection::ping() noexcept {
  Impl& d = *impl_;
  try {
    d.ensure_connected();
  } catch (...) {
    return false;
  }
  if (d.broken || d.conn == nullptr) return false;
  try {
    std::unique_ptr<::sql::Statement> st(d.conn->createStatement());
    std::unique_ptr<::sql::ResultSet> rs(st->executeQuery("SELECT 1"));
    while (rs->next()) {
    }
    return true;
  } catch (...) {
    d.broken = true;
    return false;
  }
}

bool MySqlConnection::broken() const noexcept { return impl_->broken; }

::sql::Connection& MySqlConnection::native() noexcept { return *impl_->conn; }

std::string MySqlConnection::server_version() {
  return execute("SELECT VERSION()").one().get<std::string>(0);
}

bool MySqlConnection::is_mariadb() { return server_version().find("MariaDB") != std::string::npos; }

bool MySqlConnection::has_returning() {
  const std::string version = server_version();
  int major = 0, minor = 0;
  if (version.find("MariaDB") == std::string::npos ||
      std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2) {
    return false;
  }
  return major > 10 || (major == 10 && minor >= 5);
}

}  // namespace xact::mysql
