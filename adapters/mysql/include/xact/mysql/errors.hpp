// MySQL's and MariaDB's errors as xact's: the adapter's one error mapping.
//
// map_error() is the only place that knows Connector/C++'s exception classes and the servers'
// error numbers; every call of the adapter goes through it. The table (doc/mysql.md has it with
// the reasons):
//
//   native error (Connector/C++ sql::SQLException)   phase                  xact error
//   -----------------------------------------------  ---------------------  ----------------------
//   1213 ER_LOCK_DEADLOCK, 1614 XA_RBDEADLOCK        any                    DeadlockError
//   1205 ER_LOCK_WAIT_TIMEOUT, 3572 ER_LOCK_NOWAIT   any                    sql::LockTimeoutError
//   1020 ER_CHECKREAD, other SQLSTATE 40001           any                    SerializationFailure
//   1412 ER_TABLE_DEF_CHANGED                        any                    SerializationFailure
//   1402 XA_RBROLLBACK, 1613 XA_RBTIMEOUT, 40000     any                    TransientError
//   2006 gone away, 2013/2055 lost, 1053 shutdown,   commit_one_phase       InDoubtError
//   1927 killed, 2002/2003 cannot connect, 2026 SSL, any other              sql::ConnectionLost
//   a closed connection (InvalidInstanceException)
//   1040 too many connections, 1203 too many user    connect                sql::ConnectionLost
//   1397 XAER_NOTA (unknown xid)                     commit/rollback_prepared  sql::UnknownIdError
//                                                    any other              sql::SqlError
//   InvalidArgumentException, MethodNotImplemented,  any                    UsageError
//   NonScrollableException
//   any other sql::SQLException                      any                    sql::SqlError
//   (SQLSTATE,
//                                                                           error number)
//   xact::Error and anything else                    any                    unchanged
//
// Thread-safety: pure and thread-safe.
#pragma once

#include <exception>
#include <string_view>

#include <xact/sql/errors.hpp>

namespace xact::mysql {

/// Server and client error numbers the mapping and the adapter rely on.
namespace code {
inline constexpr int kLockWaitTimeout = 1205;
inline constexpr int kDeadlock = 1213;
inline constexpr int kXaNota = 1397;        // XAER_NOTA: unknown xid
inline constexpr int kXaRmfail = 1399;      // XAER_RMFAIL: wrong XA state for the command
inline constexpr int kXaOutside = 1400;     // XAER_OUTSIDE
inline constexpr int kXaRbrollback = 1402;  // XA_RBROLLBACK: the branch was rolled back
inline constexpr int kXaRbtimeout = 1613;
inline constexpr int kXaRbdeadlock = 1614;
inline constexpr int kCheckRead = 1020;
inline constexpr int kTableDefChanged = 1412;  // a snapshot older than the table's definition
inline constexpr int kLockNowait = 3572;
inline constexpr int kServerShutdown = 1053;
inline constexpr int kConnectionKilled = 1927;
inline constexpr int kTooManyConnections = 1040;
inline constexpr int kTooManyUserConnections = 1203;
inline constexpr int kConnectionError = 2002;
inline constexpr int kConnHostError = 2003;
inline constexpr int kServerGone = 2006;
inline constexpr int kServerLost = 2013;
inline constexpr int kSslConnectionError = 2026;
inline constexpr int kServerLostExtended = 2055;
}  // namespace code

/// Whether a native error number means the connection is gone (the client's 20xx numbers,
/// a server shutting down or killing the connection).
bool is_connection_lost(int native_code) noexcept;

/// The xact error for `error` (a Connector/C++ sql::SQLException, usually) raised in `phase`.
/// `context` starts the message ("resource 'mysql:orders'"); the server's message, the error
/// number and the SQLSTATE follow, then what to do. Errors that are not Connector/C++'s come
/// back unchanged.
std::exception_ptr map_error(const std::exception_ptr& error, sql::Phase phase,
                             std::string_view context = "mysql") noexcept;

}  // namespace xact::mysql
