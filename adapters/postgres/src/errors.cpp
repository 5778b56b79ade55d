// The PostgreSQL adapter's one error mapping (see <xact/postgres/errors.hpp> for the table).
#include <xact/postgres/errors.hpp>

#include <charconv>
#include <string>

#include <pqxx/except>

#include <xact/errors.hpp>

namespace xact::postgres {

namespace {

bool lost_connection_state(std::string_view sqlstate) {
  // 08xxx connection exceptions; 57P01 admin_shutdown, 57P02 crash_shutdown,
  // 57P03 cannot_connect_now (the server is starting or stopping).
  return sqlstate.substr(0, 2) == "08" || sqlstate == "57P01" || sqlstate == "57P02" ||
         sqlstate == "57P03";
}

std::string trimmed(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  return std::string(s);
}

template <class E>
std::exception_ptr make(std::string message) {
  return std::make_exception_ptr(E(std::move(message)));
}

std::exception_ptr connection_lost(std::string_view context, sql::Phase phase,
                                   std::string_view what) {
  return sql::connection_lost("PostgreSQL", "COMMIT", context, phase, what);
}

}  // namespace

std::exception_ptr map_error(const std::exception_ptr& error, sql::Phase phase,
                             std::string_view context) noexcept {
  if (!error) return error;
  try {
    try {
      std::rethrow_exception(error);
    } catch (const xact::Error&) {
      return error;  // already ours
    } catch (const pqxx::in_doubt_error& e) {
      return make<InDoubtError>(std::string(context) + ": " + trimmed(e.what()) +
                                "; the outcome is unknown. Do not retry: recovery decides");
    } catch (const pqxx::broken_connection& e) {
      return connection_lost(context, phase, e.what());
    } catch (const pqxx::serialization_failure& e) {
      return make<SerializationFailure>(std::string(context) +
                                        ": could not serialize access (SQLSTATE 40001): " +
                                        trimmed(e.what()) + "; retry the transaction");
    } catch (const pqxx::deadlock_detected& e) {
      return make<DeadlockError>(std::string(context) + ": deadlock detected (SQLSTATE 40P01): " +
                                 trimmed(e.what()) + "; retry the transaction");
    } catch (const pqxx::statement_completion_unknown& e) {
      if (phase == sql::Phase::commit_one_phase) {
        return make<InDoubtError>(std::string(context) + ": " + trimmed(e.what()) +
                                  " (SQLSTATE 40003) during COMMIT; do not retry");
      }
      return std::make_exception_ptr(
          sql::SqlError(std::string(context) +
                            ": statement completion unknown (SQLSTATE 40003): " + trimmed(e.what()),
                        "40003"));
    } catch (const pqxx::transaction_rollback& e) {
      return make<TransientError>(std::string(context) +
                                  ": the server rolled the transaction back: " + trimmed(e.what()) +
                                  "; retry the transaction");
    } catch (const pqxx::sql_error& e) {
      const std::string& state = e.sqlstate();
      const std::string what = trimmed(e.what());
      if (state == "40001") {
        return make<SerializationFailure>(std::string(context) +
                                          ": could not serialize access (SQLSTATE 40001): " + what +
                                          "; retry the transaction");
      }
      if (state == "40P01") {
        return make<DeadlockError>(std::string(context) + ": deadlock detected (SQLSTATE 40P01): " +
                                   what + "; retry the transaction");
      }
      if (state == "55P03") {
        return make<sql::LockTimeoutError>(
            std::string(context) + ": lock not available (SQLSTATE 55P03): " + what +
            "; retry the transaction (a branch left prepared by a crash holds its locks until "
            "recovery decides it)");
      }
      if (lost_connection_state(state)) return connection_lost(context, phase, what);
      if (state == "42704" &&
          (phase == sql::Phase::commit_prepared || phase == sql::Phase::rollback_prepared)) {
        return make<sql::UnknownIdError>(
            std::string(context) + ": no such prepared transaction (SQLSTATE 42704): " + what);
      }
      return std::make_exception_ptr(sql::SqlError(
          std::string(context) + ": " + what + (state.empty() ? "" : " (SQLSTATE " + state + ")"),
          state));
    } catch (const pqxx::usage_error& e) {
      return make<UsageError>(std::string(context) + ": " + trimmed(e.what()));
    } catch (const pqxx::argument_error& e) {
      return make<UsageError>(std::string(context) + ": " + trimmed(e.what()));
    } catch (const pqxx::conversion_error& e) {
      return make<UsageError>(std::string(context) + ": " + trimmed(e.what()));
    } catch (const pqxx::range_error& e) {
      return make<UsageError>(std::string(context) + ": " + trimmed(e.what()));
    } catch (const pqxx::failure& e) {
      return make<ResourceError>(std::string(context) + ": " + trimmed(e.what()));
    } catch (...) {
      return error;  // not a database error: the caller's own
    }
  } catch (...) {
    // Building the message failed (out of memory): hand back what we were given.
    return error;
  }
}

void check_max_prepared_transactions(std::string_view setting, std::string_view context) {
  long n = -1;
  const auto [ptr, ec] = std::from_chars(setting.data(), setting.data() + setting.size(), n);
  if (ec == std::errc() && ptr == setting.data() + setting.size() && n > 0) return;
  throw ResourceError(
      std::string(context) +
      ": the server has max_prepared_transactions = " + std::string(setting) +
      ", so it refuses PREPARE TRANSACTION and cannot take part in a two-phase commit. Set "
      "max_prepared_transactions to at least max_connections in postgresql.conf (or "
      "`-c max_prepared_transactions=64` on the command line; docker/compose.yaml does) "
      "and restart the server");
}

}  // namespace xact::postgres
