#include <xact/sqlite/sqlite_connection.hpp>

#include <cctype>
#include <climits>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include <sqlite3.h>
#include <unistd.h>

#include <xact/errors.hpp>
#include <xact/sql/placeholders.hpp>
#include <xact/sqlite/errors.hpp>

namespace xact::sqlite {

namespace {

constexpr std::size_t kStatementCacheSize = 64;

bool only_blanks(const char* tail) {
  if (tail == nullptr) return true;
  for (; *tail != '\0'; ++tail) {
    if (std::isspace(static_cast<unsigned char>(*tail)) == 0 && *tail != ';') return false;
  }
  return true;
}

}  // namespace

struct SqliteConnection::Impl {
  sqlite3* db = nullptr;
  bool owned = false;
  std::string context;
  bool broken = false;
  std::exception_ptr poison;  // a conflict inside the branch: it cannot commit any more
  int last_code = 0;
  std::string last_message;

  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    std::uint64_t used = 0;
  };
  std::unordered_map<std::string, Cached> statements;
  std::uint64_t tick = 0;

  ~Impl() {
    for (auto& [sql, c] : statements) sqlite3_finalize(c.stmt);
    statements.clear();
    if (owned && db != nullptr) sqlite3_close_v2(db);
  }

  // Records the connection's current error and throws its mapping for `phase`.
  [[noreturn]] void fail(int code, sql::Phase phase) {
    last_code = code;
    last_message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    if (is_fatal(code)) broken = true;
    std::exception_ptr mapped = map_error(code, last_message, phase, context);
    if (phase == sql::Phase::statement && is_busy(code) && db != nullptr &&
        sqlite3_get_autocommit(db) == 0) {
      // Inside a transaction: the statement did not run and (BUSY_SNAPSHOT) never can; the
      // transaction must start again.
      poison = mapped;
    }
    std::rethrow_exception(mapped);
  }

  sqlite3_stmt* prepared(std::string_view sql, sql::Phase phase) {
    auto it = statements.find(std::string(sql));
    if (it == statements.end()) {
      if (statements.size() >= kStatementCacheSize) {
        auto oldest = statements.begin();
        for (auto i = statements.begin(); i != statements.end(); ++i) {
          if (i->second.used < oldest->second.used) oldest = i;
        }
        sqlite3_finalize(oldest->second.stmt);
        statements.erase(oldest);
      }
      // $n -> ?n once per compiled statement: the cache is keyed by the text as given.
      const std::string text =
          sql::translate_placeholders(sql, sql::PlaceholderStyle::numbered_question).sql;
      if (text.size() > static_cast<std::size_t>(INT_MAX)) {
        throw UsageError(context + ": statement too long");
      }
      sqlite3_stmt* stmt = nullptr;
      const char* tail = nullptr;
      const int rc = sqlite3_prepare_v3(db, text.data(), static_cast<int>(text.size()),
                                        SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
      if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        fail(rc, phase);
      }
      if (stmt == nullptr) throw UsageError(context + ": empty statement");
      if (!only_blanks(tail)) {
        sqlite3_finalize(stmt);
        throw UsageError(context + ": one statement per call: '" + std::string(sql) +
                         "' holds more than one");
      }
      it = statements.emplace(std::string(sql), Cached{stmt, 0}).first;
    }
    it->second.used = ++tick;
    return it->second.stmt;
  }

  sql::Result run(std::string_view sql, const sql::Params& params, sql::Phase phase) {
    if (broken || db == nullptr) {
      throw ResourceError(context + ": the connection is unusable after an earlier error (" +
                          last_message + ")");
    }
    sqlite3_stmt* stmt = prepared(sql, phase);
    struct Reset {
      sqlite3_stmt* s;
      ~Reset() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
      }
    } reset{stmt};
    const int expected = sqlite3_bind_parameter_count(stmt);
    if (expected != static_cast<int>(params.size())) {
      throw UsageError(context + ": the statement takes " + std::to_string(expected) +
                       " parameters, " + std::to_string(params.size()) +
                       " given: " + std::string(sql));
    }
    int i = 0;
    for (const sql::Value& v : params) {
      ++i;
      int rc = SQLITE_OK;
      if (v.is_null()) {
        rc = sqlite3_bind_null(stmt, i);
      } else if (const auto* n = v.if_int64()) {
        rc = sqlite3_bind_int64(stmt, i, *n);
      } else if (const auto* x = v.if_double()) {
        rc = sqlite3_bind_double(stmt, i, *x);
      } else if (const auto* s = v.if_text()) {
        rc = sqlite3_bind_text64(stmt, i, s->data(), s->size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      } else if (const auto* b = v.if_bytes()) {
        rc = sqlite3_bind_blob64(stmt, i, b->data(), b->size(), SQLITE_TRANSIENT);
      } else if (const auto* f = v.if_bool()) {
        rc = sqlite3_bind_int64(stmt, i, *f ? 1 : 0);
      }
      if (rc != SQLITE_OK) fail(rc, phase);
    }
    const int ncols = sqlite3_column_count(stmt);
    std::vector<std::string> names;
    names.reserve(static_cast<std::size_t>(ncols));
    for (int c = 0; c < ncols; ++c) {
      const char* name = sqlite3_column_name(stmt, c);
      names.emplace_back(name != nullptr ? name : "");
    }
    std::vector<std::vector<sql::Value>> rows;
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) fail(rc, phase);
      std::vector<sql::Value> row;
      row.reserve(static_cast<std::size_t>(ncols));
      for (int c = 0; c < ncols; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_INTEGER:
            row.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(stmt, c)));
            break;
          case SQLITE_FLOAT: row.emplace_back(sqlite3_column_double(stmt, c)); break;
          case SQLITE_TEXT: {
            const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
            const int len = sqlite3_column_bytes(stmt, c);
            row.emplace_back(std::string(p != nullptr ? p : "", static_cast<std::size_t>(len)));
            break;
          }
          case SQLITE_BLOB: {
            const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, c));
            const int len = sqlite3_column_bytes(stmt, c);
            row.emplace_back(p != nullptr ? sql::Bytes(p, p + len) : sql::Bytes());
            break;
          }
          default: row.emplace_back(); break;
        }
      }
      rows.push_back(std::move(row));
    }
    const std::int64_t changed = sqlite3_stmt_readonly(stmt) != 0 ? 0 : sqlite3_changes64(db);
    sql::Result result(std::move(names), changed);
    for (auto& r : rows) result.add_row(std::move(r));
    return result;
  }

  // WAL + synchronous=FULL, or a UsageError saying why not.
  void make_durable(const std::string& path_for_messages) {
    if (sqlite3_db_readonly(db, "main") == 1) {
      throw UsageError(context + ": the SQLite database " + path_for_messages +
                       " is read-only: xact's SQLite resource writes its decision markers "
                       "there; open it read-write");
    }
    const std::string mode =
        run("PRAGMA journal_mode=WAL", {}, sql::Phase::connect).one().get<std::string>(0);
    if (mode != "wal") {
      throw UsageError(context + ": the SQLite database " + path_for_messages +
                       " cannot use WAL (journal_mode stays '" + mode +
                       "'): xact's SQLite resource needs journal_mode=WAL with "
                       "synchronous=FULL for a durable commit. Use a database file on a local, "
                       "writable file system (not ':memory:' or a temporary database)");
    }
    run("PRAGMA synchronous=FULL", {}, sql::Phase::connect);
    const auto level = run("PRAGMA synchronous", {}, sql::Phase::connect).one().get<int>(0);
    if (level < 2) {
      throw UsageError(context + ": synchronous=FULL could not be set on " + path_for_messages);
    }
  }
};

SqliteConnection::SqliteConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteConnection::~SqliteConnection() = default;

std::unique_ptr<SqliteConnection> SqliteConnection::open(const std::string& path,
                                                         const OpenOptions& options,
                                                         std::string context) {
  auto impl = std::make_unique<Impl>();
  impl->context = std::move(context);
  impl->owned = true;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX;
  if (options.create_if_missing && !options.read_only) flags |= SQLITE_OPEN_CREATE;
  std::string target = path;
  if (options.read_only) {
    flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX;
    // Without a WAL beside it, the file holds everything: immutable keeps SQLite from making
    // the -wal and -shm files a read would otherwise create.
    if (path.rfind("file:", 0) != 0 && ::access((path + "-wal").c_str(), F_OK) != 0) {
      target = "file:";
      for (const char ch : path) {
        if (ch == '%' || ch == '?' || ch == '#') {
          static const char* hex = "0123456789ABCDEF";
          target += '%';
          target += hex[static_cast<unsigned char>(ch) >> 4];
          target += hex[static_cast<unsigned char>(ch) & 15];
        } else {
          target += ch;
        }
      }
      target += "?immutable=1";
    }
  }
  const int rc = sqlite3_open_v2(target.c_str(), &impl->db, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = impl->db != nullptr ? sqlite3_errmsg(impl->db) : "out of memory";
    std::rethrow_exception(map_error(
        rc,
        message + " (opening '" + path + "'" +
            (options.create_if_missing ? ")" : "; it is not created here: it must exist)"),
        sql::Phase::connect, impl->context));
  }
  sqlite3_extended_result_codes(impl->db, 1);
  sqlite3_busy_timeout(impl->db, static_cast<int>(options.busy_timeout.count()));
  if (!options.read_only) impl->make_durable("'" + path + "'");
  return std::unique_ptr<SqliteConnection>(new SqliteConnection(std::move(impl)));
}

std::shared_ptr<SqliteConnection> SqliteConnection::borrow(sqlite3* native,
                                                           std::chrono::milliseconds busy_timeout,
                                                           std::string context) {
  if (native == nullptr) throw UsageError(context + ": borrow of a null sqlite3 handle");
  auto impl = std::make_unique<Impl>();
  impl->context = std::move(context);
  impl->db = native;
  if (sqlite3_get_autocommit(native) == 0) {
    throw UsageError(impl->context +
                     ": the connection to enlist has a transaction open: end it first");
  }
  sqlite3_extended_result_codes(native, 1);
  sqlite3_busy_timeout(native, static_cast<int>(busy_timeout.count()));
  const char* file = sqlite3_db_filename(native, "main");
  std::string label = "(in memory)";
  if (file != nullptr && *file != '\0') {
    label = "'";
    label += file;
    label += "'";
  }
  impl->make_durable(label);
  return std::shared_ptr<SqliteConnection>(new SqliteConnection(std::move(impl)));
}

sql::Result SqliteConnection::execute(std::string_view sql, const sql::Params& params) {
  check_usable();
  return impl_->run(sql, params, sql::Phase::statement);
}

void SqliteConnection::run_protocol(std::string_view sql, sql::Phase phase) {
  impl_->run(sql, {}, phase);
}

void SqliteConnection::check_usable() const {
  if (impl_->poison) std::rethrow_exception(impl_->poison);
}

void SqliteConnection::clear_poison() noexcept { impl_->poison = nullptr; }

int SqliteConnection::last_error_code() const noexcept { return impl_->last_code; }

const std::string& SqliteConnection::last_error_message() const noexcept {
  return impl_->last_message;
}

const std::string& SqliteConnection::context() const noexcept { return impl_->context; }

bool SqliteConnection::looks_alive() noexcept { return !impl_->broken && impl_->db != nullptr; }

bool SqliteConnection::ping() noexcept {
  if (!looks_alive()) return false;
  try {
    impl_->run("SELECT count(*) FROM sqlite_schema", {}, sql::Phase::statement);
    return true;
  } catch (...) {
    impl_->broken = true;
    return false;
  }
}

bool SqliteConnection::broken() const noexcept { return impl_->broken; }

sqlite3* SqliteConnection::native() noexcept { return impl_->db; }

bool SqliteConnection::in_transaction() const noexcept {
  return impl_->db != nullptr && sqlite3_get_autocommit(impl_->db) == 0;
}

}  // namespace xact::sqlite
