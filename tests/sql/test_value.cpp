// xact::sql::Value and Params: construction, typed reads, what converts and what refuses.
#include <xact/sql/value.hpp>

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include <xact/errors.hpp>

namespace xact::sql {
namespace {

TEST(SqlValue, EachConstructorHoldsItsType) {
  EXPECT_EQ(Value().type(), Type::null);
  EXPECT_EQ(Value(nullptr).type(), Type::null);
  EXPECT_EQ(Value(std::nullopt).type(), Type::null);
  EXPECT_EQ(Value(42).type(), Type::int64);
  EXPECT_EQ(Value(std::uint16_t{7}).type(), Type::int64);
  EXPECT_EQ(Value(1.5).type(), Type::float64);
  EXPECT_EQ(Value("text").type(), Type::text);
  EXPECT_EQ(Value(std::string("text")).type(), Type::text);
  EXPECT_EQ(Value(std::string_view("text")).type(), Type::text);
  EXPECT_EQ(Value(Bytes{0, 255}).type(), Type::bytes);
  EXPECT_EQ(Value(true).type(), Type::boolean);
  EXPECT_EQ(Value(std::optional<int>()).type(), Type::null);
  EXPECT_EQ(Value(std::optional<int>(3)).type(), Type::int64);
}

TEST(SqlValue, AnUnsignedValueBeyondInt64IsRefused) {
  EXPECT_THROW(Value(std::numeric_limits<std::uint64_t>::max()), UsageError);
  EXPECT_EQ(Value(std::uint64_t{1} << 62).as_int64(), std::int64_t{1} << 62);
}

TEST(SqlValue, ReadsConvertOnlyWithoutLoss) {
  EXPECT_EQ(Value(42).get<std::int64_t>(), 42);
  EXPECT_EQ(Value(42).get<int>(), 42);
  EXPECT_EQ(Value(42).get<double>(), 42.0);
  EXPECT_EQ(Value(42).get<std::string>(), "42");
  EXPECT_EQ(Value(2.0).get<std::int64_t>(), 2);
  EXPECT_THROW(Value(2.5).get<std::int64_t>(), UsageError);
  EXPECT_EQ(Value("12345678901234").get<std::int64_t>(), 12345678901234);  // NUMERIC as text
  EXPECT_EQ(Value("+7").get<std::int64_t>(), 7);
  EXPECT_THROW(Value("12abc").get<std::int64_t>(), UsageError);
  EXPECT_DOUBLE_EQ(Value("3.25").get<double>(), 3.25);
  EXPECT_TRUE(std::isnan(Value("NaN").get<double>()));
  EXPECT_EQ(Value("-Infinity").get<double>(), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(Value(0.1).get<std::string>(), "0.1") << "shortest form that reads back exactly";
  EXPECT_EQ(Value(true).get<std::string>(), "true");
  EXPECT_TRUE(Value("t").get<bool>());
  EXPECT_FALSE(Value(0).get<bool>());
  EXPECT_THROW(Value(2).get<bool>(), UsageError);
  EXPECT_EQ(Value("ab").get<Bytes>(), (Bytes{'a', 'b'}));
  EXPECT_THROW(Value(Bytes{1}).get<std::string>(), UsageError);
}

TEST(SqlValue, ANarrowIntegerThatDoesNotFitIsRefused) {
  EXPECT_THROW(Value(70000).get<std::int16_t>(), UsageError);
  EXPECT_THROW(Value(-1).get<unsigned>(), UsageError);
}

TEST(SqlValue, NullReadsAsNulloptOrFailsNamingOptional) {
  EXPECT_EQ(Value().get<std::optional<std::string>>(), std::nullopt);
  EXPECT_EQ(Value(5).get<std::optional<std::int64_t>>(), 5);
  try {
    (void)Value().get<std::string>();
    FAIL() << "reading NULL as std::string must throw";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("std::optional"), std::string::npos) << e.what();
  }
}

TEST(SqlValue, DebugStringShowsTypeAndCutsLongValues) {
  EXPECT_EQ(Value().debug_string(), "NULL");
  EXPECT_EQ(Value("x").debug_string(), "'x'");
  EXPECT_EQ(Value(Bytes{0, 0xab}).debug_string(), "x'00ab'");
  EXPECT_LT(Value(std::string(1000, 'a')).debug_string().size(), 60u);
}

TEST(SqlParams, KeepPlaceholderOrder) {
  Params p{1, "two", nullptr, 4.5, false};
  p.add(Bytes{9});
  ASSERT_EQ(p.size(), 6u);
  EXPECT_EQ(p[0], Value(1));
  EXPECT_EQ(p[1], Value("two"));
  EXPECT_TRUE(p[2].is_null());
  EXPECT_EQ(p[5].type(), Type::bytes);
  EXPECT_THROW((void)p[6], std::out_of_range);
}

}  // namespace
}  // namespace xact::sql
