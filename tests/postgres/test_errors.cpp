// xact::postgres::map_error, table-wise and without a server: libpqxx's exceptions are built
// directly, as libpqxx itself builds them from a server's error (SQLSTATE included).
#include <xact/postgres/errors.hpp>

#include <functional>
#include <typeinfo>

#include <gtest/gtest.h>
#include <pqxx/except>

#include <xact/errors.hpp>

namespace xact::postgres {
namespace {

using sql::Phase;

// What the mapped error must be: checked by a catch of the expected type, so a subclass of
// the expected type passes and a sibling fails.
using Check = std::function<bool(const std::exception_ptr&)>;

template <class E>
Check is() {
  return [](const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const E&) {
      return true;
    } catch (...) {
      return false;
    }
  };
}

// ... and exactly that type, not a subclass (SqlError must not be a ConnectionLost, etc.).
template <class E>
Check exactly() {
  return [](const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      return typeid(ex) == typeid(E);
    } catch (...) {
      return false;
    }
  };
}

struct Row {
  const char* what;
  std::function<std::exception_ptr()> native;
  Phase phase;
  Check expect;
  const char* expect_name;
};

template <class E, class... A>
std::function<std::exception_ptr()> native(A... args) {
  return [=] { return std::make_exception_ptr(E(args...)); };
}

const Row kTable[] = {
    {"serialization_failure", native<pqxx::serialization_failure>("could not serialize"),
     Phase::statement, exactly<SerializationFailure>(), "SerializationFailure"},
    {"sql_error 40001", native<pqxx::sql_error>("could not serialize", "UPDATE", "40001"),
     Phase::statement, exactly<SerializationFailure>(), "SerializationFailure"},
    {"deadlock_detected", native<pqxx::deadlock_detected>("deadlock detected"), Phase::statement,
     exactly<DeadlockError>(), "DeadlockError"},
    {"sql_error 40P01", native<pqxx::sql_error>("deadlock", "UPDATE", "40P01"), Phase::prepare,
     exactly<DeadlockError>(), "DeadlockError"},
    {"lock_timeout 55P03",
     native<pqxx::sql_error>("canceling statement due to lock timeout", "UPDATE", "55P03"),
     Phase::statement, exactly<sql::LockTimeoutError>(), "LockTimeoutError"},
    {"transaction_rollback 40000", native<pqxx::transaction_rollback>("rolled back"),
     Phase::statement, exactly<TransientError>(), "TransientError"},
    {"broken_connection in a statement", native<pqxx::broken_connection>("server closed"),
     Phase::statement, exactly<sql::ConnectionLost>(), "ConnectionLost"},
    {"broken_connection at prepare", native<pqxx::broken_connection>("server closed"),
     Phase::prepare, exactly<sql::ConnectionLost>(), "ConnectionLost"},
    {"broken_connection at one-phase COMMIT", native<pqxx::broken_connection>("server closed"),
     Phase::commit_one_phase, exactly<InDoubtError>(), "InDoubtError"},
    {"broken_connection at COMMIT PREPARED", native<pqxx::broken_connection>("server closed"),
     Phase::commit_prepared, exactly<sql::ConnectionLost>(), "ConnectionLost"},
    {"broken_connection at connect", native<pqxx::broken_connection>("connection refused"),
     Phase::connect, exactly<sql::ConnectionLost>(), "ConnectionLost"},
    {"too_many_connections at connect", native<pqxx::too_many_connections>("too many clients"),
     Phase::connect, exactly<sql::ConnectionLost>(), "ConnectionLost"},
    {"admin_shutdown 57P01", native<pqxx::sql_error>("terminating connection", "", "57P01"),
     Phase::statement, exactly<sql::ConnectionLost>(), "ConnectionLost"},
    {"crash_shutdown 57P02 at one-phase COMMIT",
     native<pqxx::sql_error>("terminating connection", "", "57P02"), Phase::commit_one_phase,
     exactly<InDoubtError>(), "InDoubtError"},
    {"connection_failure 08006", native<pqxx::sql_error>("connection failure", "", "08006"),
     Phase::rollback, exactly<sql::ConnectionLost>(), "ConnectionLost"},
    {"in_doubt_error", native<pqxx::in_doubt_error>("lost during commit"), Phase::statement,
     exactly<InDoubtError>(), "InDoubtError"},
    {"statement_completion_unknown at COMMIT",
     native<pqxx::statement_completion_unknown>("unknown"), Phase::commit_one_phase,
     exactly<InDoubtError>(), "InDoubtError"},
    {"statement_completion_unknown in a statement",
     native<pqxx::statement_completion_unknown>("unknown"), Phase::statement,
     exactly<sql::SqlError>(), "SqlError"},
    {"42704 at COMMIT PREPARED",
     native<pqxx::sql_error>("prepared transaction with identifier does not exist",
                             "COMMIT PREPARED", "42704"),
     Phase::commit_prepared, exactly<sql::UnknownIdError>(), "UnknownIdError"},
    {"42704 at ROLLBACK PREPARED",
     native<pqxx::sql_error>("does not exist", "ROLLBACK PREPARED", "42704"),
     Phase::rollback_prepared, exactly<sql::UnknownIdError>(), "UnknownIdError"},
    {"42704 in a statement (an unknown type, say)",
     native<pqxx::sql_error>("type \"nope\" does not exist", "SELECT 1::nope", "42704"),
     Phase::statement, exactly<sql::SqlError>(), "SqlError"},
    {"unique_violation 23505", native<pqxx::unique_violation>("duplicate key", "INSERT", "23505"),
     Phase::statement, exactly<sql::SqlError>(), "SqlError"},
    {"syntax_error 42601", native<pqxx::syntax_error>("syntax error", "SELEC", "42601"),
     Phase::statement, exactly<sql::SqlError>(), "SqlError"},
    {"too many prepared transactions 53400",
     native<pqxx::sql_error>("maximum number of prepared transactions reached", "PREPARE", "53400"),
     Phase::prepare, exactly<sql::SqlError>(), "SqlError"},
    {"aborted transaction 25P02",
     native<pqxx::sql_error>("current transaction is aborted", "SELECT 1", "25P02"),
     Phase::commit_one_phase, exactly<sql::SqlError>(), "SqlError"},
    {"usage_error", native<pqxx::usage_error>("started a transaction while one was open"),
     Phase::statement, exactly<UsageError>(), "UsageError"},
    {"conversion_error", native<pqxx::conversion_error>("could not convert"), Phase::statement,
     exactly<UsageError>(), "UsageError"},
    {"plain pqxx::failure", native<pqxx::failure>("no result set given"), Phase::statement,
     exactly<ResourceError>(), "ResourceError"},
};

TEST(PostgresErrorMapping, EachNativeErrorMapsToItsXactError) {
  for (const Row& row : kTable) {
    const std::exception_ptr mapped = map_error(row.native(), row.phase, "resource 'pg:t'");
    EXPECT_TRUE(row.expect(mapped)) << row.what << " in phase " << sql::to_string(row.phase)
                                    << " should map to " << row.expect_name;
  }
}

TEST(PostgresErrorMapping, RetryableOnesAreTransientAndInDoubtNeverIs) {
  for (const Row& row : kTable) {
    const std::exception_ptr mapped = map_error(row.native(), row.phase);
    const bool transient = is<TransientError>()(mapped);
    const std::string name = row.expect_name;
    const bool should = name == "SerializationFailure" || name == "DeadlockError" ||
                        name == "LockTimeoutError" || name == "TransientError";
    EXPECT_EQ(transient, should) << row.what;
  }
}

TEST(PostgresErrorMapping, MessagesKeepTheServersTextTheSqlstateAndTheContext) {
  const auto mapped = map_error(std::make_exception_ptr(pqxx::unique_violation(
                                    "ERROR:  duplicate key value\n", "INSERT", "23505")),
                                Phase::statement, "resource 'pg:orders'");
  try {
    std::rethrow_exception(mapped);
  } catch (const sql::SqlError& e) {
    EXPECT_EQ(e.sqlstate(), "23505");
    const std::string what = e.what();
    EXPECT_NE(what.find("resource 'pg:orders'"), std::string::npos) << what;
    EXPECT_NE(what.find("duplicate key value"), std::string::npos) << what;
    EXPECT_NE(what.find("SQLSTATE 23505"), std::string::npos) << what;
  }
}

TEST(PostgresErrorMapping, XactErrorsAndForeignExceptionsPassThroughUnchanged) {
  const auto conflict = std::make_exception_ptr(ConflictError("mine"));
  EXPECT_EQ(map_error(conflict, Phase::statement), conflict);
  const auto foreign = std::make_exception_ptr(std::invalid_argument("the application's"));
  EXPECT_EQ(map_error(foreign, Phase::statement), foreign);
  EXPECT_EQ(map_error(nullptr, Phase::statement), nullptr);
}

TEST(PostgresMaxPreparedTransactions, ZeroIsRefusedWithTheFix) {
  try {
    check_max_prepared_transactions("0", "resource 'pg:t'");
    FAIL() << "max_prepared_transactions = 0 must be refused";
  } catch (const ResourceError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("max_prepared_transactions"), std::string::npos) << what;
    EXPECT_NE(what.find("postgresql.conf"), std::string::npos) << what;
    EXPECT_NE(what.find("restart"), std::string::npos) << what;
  }
  EXPECT_THROW(check_max_prepared_transactions("", "x"), ResourceError);
  EXPECT_THROW(check_max_prepared_transactions("many", "x"), ResourceError);
  EXPECT_NO_THROW(check_max_prepared_transactions("64", "x"));
}

}  // namespace
}  // namespace xact::postgres
