// The errors SQL participants add to xact's hierarchy (<xact/errors.hpp>), and the protocol
// phases an adapter's error mapping distinguishes.
//
//   xact::TransientError
//   └── LockTimeoutError     a lock could not be had in time (PostgreSQL 55P03, MySQL 1205):
//                            retry the whole transaction (xact::run does)
//   xact::ResourceError
//   ├── SqlError             the database refused a statement (syntax, constraint, ...):
//   │                        fix the statement or the data; carries SQLSTATE and native code
//   ├── ConnectionLost       the connection broke before the decision: the branch is rolled
//   │                        back by the server; retrying the transaction is safe (the SQL
//   │                        resources' RetryClassifier says so)
//   ├── PoolTimeoutError     no connection became free in time: raise the pool size or find
//   │                        transactions left open
//   └── UnknownIdError       the database holds no prepared branch of that id (PostgreSQL
//                            42704, XA 1397); recovery counts it as done
//
// Serialization failures and deadlocks map to xact::SerializationFailure and
// xact::DeadlockError; a connection lost during a one-phase COMMIT maps to xact::InDoubtError
// (the commit may have happened: never retried).
//
// Each adapter maps its driver's exceptions to these in exactly one function (for
// PostgreSQL: xact::postgres::map_error), so the table of what becomes what is in one place
// and is tested without a server. All classes are immutable values.
#pragma once

#include <exception>
#include <string>
#include <string_view>

#include <xact/errors.hpp>

namespace xact::sql {

/// Where in a branch's life an error happened: the same native error means different things
/// (a lost connection before the decision is a rollback; during a one-phase COMMIT it leaves
/// the outcome in doubt).
enum class Phase {
  connect,            ///< opening a connection
  statement,          ///< BEGIN, the application's statements, savepoints
  prepare,            ///< the yes vote (PREPARE TRANSACTION, XA PREPARE)
  commit_one_phase,   ///< COMMIT of a branch that is the only participant
  commit_prepared,    ///< phase 2: COMMIT PREPARED (also recovery's re-drive)
  rollback,           ///< ROLLBACK of an unprepared branch
  rollback_prepared,  ///< ROLLBACK PREPARED
  recover,            ///< listing prepared ids
};
std::string_view to_string(Phase phase);

class LockTimeoutError : public TransientError {
 public:
  using TransientError::TransientError;
};

/// A statement the database refused. sqlstate() is the five-character SQLSTATE ("" when the
/// driver gave none), native_code() the driver's own number (0 when it has none).
class SqlError : public ResourceError {
 public:
  SqlError(const std::string& message, std::string sqlstate, int native_code = 0)
      : ResourceError(message), sqlstate_(std::move(sqlstate)), native_code_(native_code) {}
  const std::string& sqlstate() const noexcept { return sqlstate_; }
  int native_code() const noexcept { return native_code_; }

 private:
  std::string sqlstate_;
  int native_code_;
};

class ConnectionLost : public ResourceError {
 public:
  using ResourceError::ResourceError;
};

/// What every adapter's error mapping makes of a lost connection in `phase`: InDoubtError during
/// a one-phase commit (`one_phase_commit` names its statement), otherwise ConnectionLost with a
/// message saying what the loss means for the branch and what happens next. `server` names the
/// database ("PostgreSQL"), `context` the operation, `what` the driver's message.
std::exception_ptr connection_lost(std::string_view server, std::string_view one_phase_commit,
                                   std::string_view context, Phase phase, std::string_view what);

class PoolTimeoutError : public ResourceError {
 public:
  using ResourceError::ResourceError;
};

class UnknownIdError : public ResourceError {
 public:
  using ResourceError::ResourceError;
};

}  // namespace xact::sql
