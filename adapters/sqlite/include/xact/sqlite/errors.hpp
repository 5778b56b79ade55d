// SQLite's result codes as xact's errors: the adapter's one error mapping.
//
// map_error() is the only place that knows SQLite's result codes; every failing call of the
// adapter goes through it (with the extended result code, which the adapter turns on). The
// table (doc/sqlite.md has it with the reasons):
//
//   SQLite result code                              phase              xact error
//   ----------------------------------------------  -----------------  -------------------------
//   any code                                        commit_one_phase   InDoubtError (the COMMIT
//                                                                      failed and SQLite ended the
//                                                                      transaction: it may or may
//                                                                      not be on disk)
//   SQLITE_BUSY (after the busy timeout),           any other          ConflictError (retryable)
//   SQLITE_BUSY_SNAPSHOT (517), _RECOVERY,
//   _TIMEOUT, SQLITE_LOCKED
//   SQLITE_ABORT, SQLITE_ABORT_ROLLBACK             any other          TransientError
//   SQLITE_MISUSE, SQLITE_RANGE, SQLITE_TOOBIG,     any other          UsageError
//   SQLITE_MISMATCH
//   any other (SQLITE_ERROR, CONSTRAINT, CANTOPEN,  any other          sql::SqlError (native code
//   IOERR, CORRUPT, FULL, READONLY, ...)                               = extended result code;
//                                                                      SQLSTATE "23000" for a
//                                                                      constraint, else "")
// (A COMMIT that fails while the transaction is still open — SQLITE_BUSY — did not commit: the
// adapter maps it as a statement.)
//
// Thread-safety: pure and thread-safe.
#pragma once

#include <exception>
#include <string_view>

#include <xact/sql/errors.hpp>

namespace xact::sqlite {

/// The xact error for SQLite result code `code` (extended or primary) with the message SQLite
/// gave (sqlite3_errmsg), raised in `phase`. `context` starts the message ("resource
/// 'sqlite:app'").
std::exception_ptr map_error(int code, std::string_view message, sql::Phase phase,
                             std::string_view context = "sqlite") noexcept;

/// SQLITE_BUSY or SQLITE_LOCKED, with any extended code.
bool is_busy(int code) noexcept;
/// Codes after which the connection is not worth keeping (I/O error, corruption, not a
/// database, cannot open, out of memory, disk full): the pool closes it.
bool is_fatal(int code) noexcept;

}  // namespace xact::sqlite
