// xact::mysql::map_error, table-wise, without a server: Connector/C++'s exceptions are built
// by hand with the error numbers and SQLSTATEs the servers send.
#include <string>
#include <vector>

#include <cppconn/exception.h>
#include <gtest/gtest.h>

#include <xact/errors.hpp>
#include <xact/mysql/errors.hpp>
#include <xact/mysql/mysql_resource.hpp>

namespace xact::mysql {
namespace {

using sql::Phase;

enum class Kind {
  deadlock,
  lock_timeout,
  serialization,
  transient,
  in_doubt,
  connection_lost,
  unknown_id,
  sql_error,
  usage,
  unchanged,
};

const char* name(Kind k) {
  switch (k) {
    case Kind::deadlock: return "DeadlockError";
    case Kind::lock_timeout: return "LockTimeoutError";
    case Kind::serialization: return "SerializationFailure";
    case Kind::transient: return "TransientError";
    case Kind::in_doubt: return "InDoubtError";
    case Kind::connection_lost: return "ConnectionLost";
    case Kind::unknown_id: return "UnknownIdError";
    case Kind::sql_error: return "SqlError";
    case Kind::usage: return "UsageError";
    case Kind::unchanged: return "unchanged";
  }
  return "?";
}

// The most specific kind of a mapped error.
Kind kind_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const DeadlockError&) {
    return Kind::deadlock;
  } catch (const sql::LockTimeoutError&) {
    return Kind::lock_timeout;
  } catch (const SerializationFailure&) {
    return Kind::serialization;
  } catch (const TransientError&) {
    return Kind::transient;
  } catch (const InDoubtError&) {
    return Kind::in_doubt;
  } catch (const sql::ConnectionLost&) {
    return Kind::connection_lost;
  } catch (const sql::UnknownIdError&) {
    return Kind::unknown_id;
  } catch (const sql::SqlError&) {
    return Kind::sql_error;
  } catch (const UsageError&) {
    return Kind::usage;
  } catch (...) {
    return Kind::unchanged;
  }
}

struct Row {
  int code;
  const char* state;
  Phase phase;
  Kind expected;
};

// The table of <xact/mysql/errors.hpp>, row by row.
const std::vector<Row> kTable = {
    {1213, "40001", Phase::statement, Kind::deadlock},
    {1213, "40001", Phase::prepare, Kind::deadlock},
    {1213, "40001", Phase::commit_one_phase, Kind::deadlock},
    {1614, "XA102", Phase::prepare, Kind::deadlock},
    {1205, "HY000", Phase::statement, Kind::lock_timeout},
    {3572, "HY000", Phase::statement, Kind::lock_timeout},
    {1020, "HY000", Phase::statement, Kind::serialization},
    {1412, "HY000", Phase::statement, Kind::serialization},
    {9999, "40001", Phase::statement, Kind::serialization},
    {1402, "XA100", Phase::prepare, Kind::transient},
    {1613, "XA106", Phase::commit_one_phase, Kind::transient},
    {2006, "HY000", Phase::statement, Kind::connection_lost},
    {2013, "HY000", Phase::prepare, Kind::connection_lost},
    {2013, "HY000", Phase::commit_one_phase, Kind::in_doubt},
    {2006, "HY000", Phase::commit_one_phase, Kind::in_doubt},
    {2055, "HY000", Phase::commit_prepared, Kind::connection_lost},
    {1053, "08S01", Phase::recover, Kind::connection_lost},
    {1927, "70100", Phase::rollback_prepared, Kind::connection_lost},
    {2003, "HY000", Phase::connect, Kind::connection_lost},
    {2002, "HY000", Phase::connect, Kind::connection_lost},
    {1040, "08004", Phase::connect, Kind::connection_lost},
    {1040, "08004", Phase::statement, Kind::sql_error},
    {1397, "XAE04", Phase::commit_prepared, Kind::unknown_id},
    {1397, "XAE04", Phase::rollback_prepared, Kind::unknown_id},
    {1397, "XAE04", Phase::statement, Kind::sql_error},
    {1062, "23000", Phase::statement, Kind::sql_error},
    {1064, "42000", Phase::statement, Kind::sql_error},
    {1045, "28000", Phase::connect, Kind::sql_error},
    {1399, "XAE07", Phase::prepare, Kind::sql_error},
};

TEST(MySqlErrorMapping, EveryRowOfTheTableMapsAsDocumented) {
  for (const Row& r : kTable) {
    const auto mapped =
        map_error(std::make_exception_ptr(::sql::SQLException("server says no", r.state, r.code)),
                  r.phase, "resource 'mysql:t'");
    EXPECT_EQ(name(kind_of(mapped)), std::string(name(r.expected)))
        << "error " << r.code << " / " << r.state << " in phase " << sql::to_string(r.phase);
  }
}

TEST(MySqlErrorMapping, SqlErrorKeepsTheErrorNumberAndSqlstate) {
  const auto mapped =
      map_error(std::make_exception_ptr(::sql::SQLException("Duplicate entry 'a'", "23000", 1062)),
                Phase::statement, "resource 'mysql:t'");
  try {
    std::rethrow_exception(mapped);
  } catch (const sql::SqlError& e) {
    EXPECT_EQ(e.native_code(), 1062);
    EXPECT_EQ(e.sqlstate(), "23000");
    EXPECT_NE(std::string(e.what()).find("resource 'mysql:t'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Duplicate entry"), std::string::npos) << e.what();
  }
}

TEST(MySqlErrorMapping, ConnectorUsageErrorsAreUsageErrors) {
  EXPECT_EQ(kind_of(map_error(std::make_exception_ptr(::sql::InvalidArgumentException("bad")),
                              Phase::statement)),
            Kind::usage);
  EXPECT_EQ(kind_of(map_error(std::make_exception_ptr(::sql::MethodNotImplementedException("x")),
                              Phase::statement)),
            Kind::usage);
}

TEST(MySqlErrorMapping, AClosedConnectionIsALostConnection) {
  EXPECT_EQ(kind_of(map_error(std::make_exception_ptr(
                                  ::sql::InvalidInstanceException("Connection has been closed")),
                              Phase::statement)),
            Kind::connection_lost);
  EXPECT_EQ(kind_of(map_error(std::make_exception_ptr(
                                  ::sql::InvalidInstanceException("Connection has been closed")),
                              Phase::commit_one_phase)),
            Kind::in_doubt);
}

TEST(MySqlErrorMapping, XactErrorsAndOtherExceptionsPassUnchanged) {
  const auto ours = std::make_exception_ptr(ConflictError("mine"));
  EXPECT_EQ(map_error(ours, Phase::statement), ours);
  const auto other = std::make_exception_ptr(std::runtime_error("app"));
  EXPECT_EQ(map_error(other, Phase::statement), other);
  EXPECT_EQ(map_error(nullptr, Phase::statement), nullptr);
}

TEST(MySqlXid, IsWrittenAsHexGtridHexBqualAndFormatId) {
  NodeId node;
  for (std::size_t i = 0; i < node.bytes.size(); ++i) node.bytes[i] = static_cast<std::uint8_t>(i);
  Xid xid;
  xid.gtrid = Gtrid(node, 1, 2);
  xid.bqual = std::string("my\0db", 5);
  EXPECT_EQ(xa_xid(xid),
            "X'000102030405060708090a0b0c0d0e0f00000001"
            "0000000000000002',X'6d7900"
            "6462'," +
                std::to_string(Xid::kFormatId));
}

TEST(MySqlEngines, OnlyTransactionalEnginesPass) {
  EXPECT_TRUE(is_transactional_engine("InnoDB"));
  EXPECT_TRUE(is_transactional_engine("innodb"));
  EXPECT_TRUE(is_transactional_engine("ROCKSDB"));
  EXPECT_FALSE(is_transactional_engine("MyISAM"));
  EXPECT_FALSE(is_transactional_engine("MEMORY"));
  EXPECT_FALSE(is_transactional_engine("Aria"));
  EXPECT_FALSE(is_transactional_engine("CSV"));
}

}  // namespace
}  // namespace xact::mysql
