// PostgreSQL's errors as xact's: the adapter's one error mapping, and the check made on every
// new connection.
//
// map_error() is the only place that knows libpqxx's exception classes and SQLSTATEs; every
// call of the adapter goes through it. The table (doc/postgres.md has it with the reasons):
//
//   native error                                   phase                  xact error
//   ---------------------------------------------  ---------------------  ------------------------
//   pqxx::serialization_failure, SQLSTATE 40001    any                    SerializationFailure
//   pqxx::deadlock_detected, 40P01                 any                    DeadlockError
//   55P03 lock_not_available (lock_timeout, NOWAIT) any                   sql::LockTimeoutError
//   pqxx::transaction_rollback (40000)             any                    TransientError
//   pqxx::broken_connection, class 08, 57P01-03    commit_one_phase       InDoubtError
//                                                  any other              sql::ConnectionLost
//   pqxx::in_doubt_error                           any                    InDoubtError
//   pqxx::statement_completion_unknown (40003)     commit_one_phase       InDoubtError
//                                                  any other              sql::SqlError
//   42704 undefined_object                         commit/rollback_prepared  sql::UnknownIdError
//   any other pqxx::sql_error                      any                    sql::SqlError (SQLSTATE)
//   pqxx::usage_error, argument_error, conversion_error, range_error     UsageError
//   any other pqxx::failure                        any                    ResourceError
//   xact::Error and anything else                  any                    unchanged
//
// Thread-safety: both functions are pure and thread-safe.
#pragma once

#include <exception>
#include <string_view>

#include <xact/sql/errors.hpp>

namespace xact::postgres {

/// The xact error for `error` (a libpqxx exception, usually) raised in `phase`. `context` starts
/// the message ("resource 'pg:orders'"); the server's message and the SQLSTATE follow, then
/// what to do. Errors that are not libpqxx's come back unchanged.
std::exception_ptr map_error(const std::exception_ptr& error, sql::Phase phase,
                             std::string_view context = "postgresql") noexcept;

/// Throws ResourceError, saying how to fix it, when `setting` (the value of
/// max_prepared_transactions) is "0" or not a number: PostgreSQL then refuses PREPARE
/// TRANSACTION, so it cannot take part in a two-phase commit.
void check_max_prepared_transactions(std::string_view setting, std::string_view context);

}  // namespace xact::postgres
