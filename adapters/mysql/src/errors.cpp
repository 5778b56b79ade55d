// The MySQL/MariaDB adapter's one error mapping (see <xact/mysql/errors.hpp> for the table).
#include <xact/mysql/errors.hpp>

#include <string>

#include <cppconn/exception.h>

#include <xact/errors.hpp>

namespace xact::mysql {

namespace {

std::string trimmed(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  return std::string(s);
}

template <class E>
std::exception_ptr make(std::string message) {
  return std::make_exception_ptr(E(std::move(message)));
}

// "<server message> (error 1213, SQLSTATE 40001)"
std::string described(const ::sql::SQLException& e) {
  std::string s = trimmed(e.what());
  s += " (error " + std::to_string(e.getErrorCode());
  if (!e.getSQLState().empty()) s += ", SQLSTATE " + e.getSQLState();
  return s + ")";
}

std::exception_ptr connection_lost(std::string_view context, sql::Phase phase,
                                   std::string_view what) {
  return sql::connection_lost("MySQL", "XA COMMIT ... ONE PHASE", context, phase, what);
}

}  // namespace

bool is_connection_lost(int native_code) noexcept {
  switch (native_code) {
    case code::kConnectionError:
    case code::kConnHostError:
    case 2005:  // CR_UNKNOWN_HOST
    case code::kServerGone:
    case code::kServerLost:
    case code::kSslConnectionError:
    case code::kServerLostExtended:
    case code::kServerShutdown:
    case code::kConnectionKilled: return true;
    default: return false;
  }
}

std::exception_ptr map_error(const std::exception_ptr& error, sql::Phase phase,
                             std::string_view context) noexcept {
  if (!error) return error;
  try {
    try {
      std::rethrow_exception(error);
    } catch (const xact::Error&) {
      return error;  // already ours
    } catch (const ::sql::InvalidInstanceException& e) {
      // Connector/C++ says so for a connection that was closed (after a lost connection too).
      return connection_lost(context, phase, trimmed(e.what()));
    } catch (const ::sql::InvalidArgumentException& e) {
      return make<UsageError>(std::string(context) + ": " + trimmed(e.what()));
    } catch (const ::sql::MethodNotImplementedException& e) {
      return make<UsageError>(std::string(context) + ": " + trimmed(e.what()));
    } catch (const ::sql::NonScrollableException& e) {
      return make<UsageError>(std::string(context) + ": " + trimmed(e.what()));
    } catch (const ::sql::SQLException& e) {
      const int n = e.getErrorCode();
      const std::string& state = e.getSQLState();
      const std::string what = described(e);
      const std::string ctx(context);
      if (n == code::kDeadlock || n == code::kXaRbdeadlock) {
        return make<DeadlockError>(ctx + ": deadlock: " + what +
                                   "; the server rolled the whole branch back: retry the "
                                   "transaction");
      }
      if (n == code::kLockWaitTimeout || n == code::kLockNowait) {
        return make<sql::LockTimeoutError>(
            ctx + ": lock wait timeout: " + what +
            "; xact fails the branch (the statement did not run): retry the transaction, or "
            "roll back to a savepoint taken before the statement. A branch left prepared by a "
            "crash holds its locks until recovery decides it");
      }
      if (n == code::kTableDefChanged) {
        // The branch's snapshot predates a rebuild of the table (ALTER TABLE that copies or
        // rebuilds it, OPTIMIZE TABLE) by another connection: the table cannot be read as of
        // the snapshot. A new transaction sees the new definition.
        return make<SerializationFailure>(ctx + ": table definition changed: " + what +
                                          "; retry the transaction");
      }
      if (n == code::kCheckRead || state == "40001") {
        return make<SerializationFailure>(ctx + ": serialization failure: " + what +
                                          "; retry the transaction");
      }
      if (n == code::kXaRbrollback || n == code::kXaRbtimeout || state == "40000") {
        return make<TransientError>(ctx + ": the server rolled the branch back: " + what +
                                    "; retry the transaction");
      }
      if (is_connection_lost(n)) return connection_lost(context, phase, what);
      if (phase == sql::Phase::connect &&
          (n == code::kTooManyConnections || n == code::kTooManyUserConnections)) {
        return connection_lost(context, phase, what);
      }
      if (n == code::kXaNota &&
          (phase == sql::Phase::commit_prepared || phase == sql::Phase::rollback_prepared)) {
        return make<sql::UnknownIdError>(ctx + ": no such prepared XA branch: " + what);
      }
      return std::make_exception_ptr(sql::SqlError(ctx + ": " + what, state, n));
    } catch (...) {
      return error;  // not a database error: the caller's own
    }
  } catch (...) {
    // Building the message failed (out of memory): hand back what we were given.
    return error;
  }
}

}  // namespace xact::mysql
