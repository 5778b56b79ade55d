// The SQLite adapter's one error mapping (see <xact/sqlite/errors.hpp> for the table).
#include <xact/sqlite/errors.hpp>

#include <string>

#include <sqlite3.h>

#include <xact/errors.hpp>

namespace xact::sqlite {

namespace {

template <class E>
std::exception_ptr make(std::string message) {
  return std::make_exception_ptr(E(std::move(message)));
}

std::string code_name(int code) {
  const char* s = sqlite3_errstr(code);
  return std::string(s != nullptr ? s : "unknown error") + ", code " + std::to_string(code);
}

}  // namespace

bool is_busy(int code) noexcept {
  const int primary = code & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

bool is_fatal(int code) noexcept {
  switch (code & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_FULL: return true;
    default: return false;
  }
}

std::exception_ptr map_error(int code, std::string_view message, sql::Phase phase,
                             std::string_view context) noexcept {
  try {
    const std::string what = std::string(message) + " (" + code_name(code) + ")";
    const std::string ctx(context);
    const int primary = code & 0xff;
    if (phase == sql::Phase::commit_one_phase) {
      return make<InDoubtError>(ctx + ": COMMIT failed and SQLite ended the transaction: " + what +
                                "; it may or may not be on disk. Do not retry: recovery asks the "
                                "database (the decision marker) once it can be read again");
    }
    if (code == SQLITE_BUSY_SNAPSHOT) {
      return make<ConflictError>(
          ctx + ": " + what +
          ": another connection committed since this transaction's snapshot, so it cannot "
          "write (waiting does not help); retry the transaction");
    }
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
      return make<ConflictError>(ctx + ": " + what +
                                 ": another connection holds the database lock past the busy "
                                 "timeout; retry the transaction (or raise busy_timeout)");
    }
    if (primary == SQLITE_ABORT) {
      return make<TransientError>(ctx + ": " + what + ": retry the transaction");
    }
    if (primary == SQLITE_MISUSE || primary == SQLITE_RANGE || primary == SQLITE_TOOBIG ||
        primary == SQLITE_MISMATCH) {
      return make<UsageError>(ctx + ": " + what);
    }
    std::string hint;
    switch (primary) {
      case SQLITE_CANTOPEN: hint = "; check the path and that the directory is writable"; break;
      case SQLITE_READONLY: hint = "; the database or its directory is read-only"; break;
      case SQLITE_FULL: hint = "; the disk is full"; break;
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB: hint = "; the file is damaged or not an SQLite database"; break;
      default: break;
    }
    return std::make_exception_ptr(
        sql::SqlError(ctx + ": " + what + hint, primary == SQLITE_CONSTRAINT ? "23000" : "", code));
  } catch (...) {
    return std::make_exception_ptr(ResourceError("sqlite: out of memory building an error"));
  }
}

}  // namespace xact::sqlite
