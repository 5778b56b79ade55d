// xact::sql::Result and Row: access by index and by name, and errors that name the columns.
#include <xact/sql/result.hpp>

#include <gtest/gtest.h>

namespace xact::sql {
namespace {

Result two_rows() {
  Result r({"id", "name"}, 2);
  r.add_row({Value(1), Value("alice")});
  r.add_row({Value(2), Value()});
  return r;
}

TEST(SqlResult, RowsAreReadByIndexAndByColumnName) {
  const Result r = two_rows();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.affected_rows(), 2);
  EXPECT_EQ(r[0].get<std::int64_t>("id"), 1);
  EXPECT_EQ(r[0].get<std::string>(1), "alice");
  EXPECT_EQ(r[1].get<std::optional<std::string>>("name"), std::nullopt);
  int n = 0;
  for (const auto& row : r) n += row.get<int>("id");
  EXPECT_EQ(n, 3);
}

TEST(SqlResult, AnUnknownColumnIsAnErrorListingTheColumns) {
  const Result r = two_rows();
  try {
    (void)r[0].at("nmae");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("id, name"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)r[0].at(2), UsageError);
  EXPECT_THROW((void)r.at(2), UsageError);
}

TEST(SqlResult, AConversionErrorNamesTheColumn) {
  const Result r = two_rows();
  try {
    (void)r[1].get<std::string>("name");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("column 'name'"), std::string::npos) << e.what();
  }
}

TEST(SqlResult, OneRequiresExactlyOneRow) {
  EXPECT_THROW((void)two_rows().one(), UsageError);
  EXPECT_THROW((void)Result().one(), UsageError);
  Result r({"x"}, 0);
  r.add_row({Value(7)});
  EXPECT_EQ(r.one().get<int>(0), 7);
}

TEST(SqlResult, ARowMustMatchTheColumns) {
  Result r({"a", "b"}, 0);
  EXPECT_THROW(r.add_row({Value(1)}), UsageError);
}

}  // namespace
}  // namespace xact::sql
