// translate_placeholders / bind_in_order: `$n` for every dialect, each rule on its own.
#include <xact/sql/placeholders.hpp>

#include <gtest/gtest.h>

#include <xact/errors.hpp>

namespace xact::sql {
namespace {

constexpr auto kPg = PlaceholderStyle::dollar;
constexpr auto kLite = PlaceholderStyle::numbered_question;
constexpr auto kMy = PlaceholderStyle::positional_question;

std::string lite(std::string_view sql) { return translate_placeholders(sql, kLite).sql; }
std::string my(std::string_view sql) { return translate_placeholders(sql, kMy).sql; }
std::vector<std::size_t> my_order(std::string_view sql) {
  return translate_placeholders(sql, kMy).order;
}

TEST(Placeholders, PostgreSqlRunsTheStatementAsWritten) {
  const std::string sql = "SELECT $2::int + $1::int, doc ? 'k' FROM t WHERE a = $1";
  const auto t = translate_placeholders(sql, kPg);
  EXPECT_EQ(t.sql, sql);
  EXPECT_EQ(t.max_placeholder, 2u);
  EXPECT_TRUE(t.order.empty());
}

TEST(Placeholders, SqliteNumbersEachDollarAsQuestionN) {
  EXPECT_EQ(lite("UPDATE t SET v = $2 WHERE k = $1 AND w = $2"),
            "UPDATE t SET v = ?2 WHERE k = ?1 AND w = ?2");
  EXPECT_EQ(lite("SELECT $10, $1"), "SELECT ?10, ?1");
}

TEST(Placeholders, MySqlTurnsEachDollarIntoAQuestionMarkInOrderOfAppearance) {
  EXPECT_EQ(my("UPDATE t SET v = $2 WHERE k = $1 AND w = $2"),
            "UPDATE t SET v = ? WHERE k = ? AND w = ?");
  EXPECT_EQ(my_order("UPDATE t SET v = $2 WHERE k = $1 AND w = $2"),
            (std::vector<std::size_t>{1, 0, 1}));
}

TEST(Placeholders, MySqlParametersAreReorderedAndRepeatedToFollowTheQuestionMarks) {
  const auto t = translate_placeholders("SELECT $3, $1, $3, $2", kMy);
  const Params bound = bind_in_order(t, Params{"a", "b", "c"});
  ASSERT_EQ(bound.size(), 4u);
  EXPECT_EQ(bound[0], Value("c"));
  EXPECT_EQ(bound[1], Value("a"));
  EXPECT_EQ(bound[2], Value("c"));
  EXPECT_EQ(bound[3], Value("b"));
}

TEST(Placeholders, TheWrongNumberOfParametersIsRefusedWithTheCounts) {
  const auto t = translate_placeholders("SELECT $1, $2", kMy);
  try {
    bind_in_order(t, Params{"a"}, "resource 'my'");
    FAIL() << "accepted one parameter for $1..$2";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("$1..$2, 1 parameters given"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(bind_in_order(translate_placeholders("SELECT $1", kLite), Params{"a", "b"}),
               UsageError);
}

TEST(Placeholders, StringLiteralsAreLeftAlone) {
  EXPECT_EQ(lite("SELECT '$1', $1, 'it''s $2' FROM t"), "SELECT '$1', ?1, 'it''s $2' FROM t");
  EXPECT_EQ(my_order("SELECT '$2', $1"), (std::vector<std::size_t>{0}));
}

TEST(Placeholders, MySqlBackslashEscapesDoNotEndAString) {
  EXPECT_EQ(my(R"(SELECT 'it\'s $1', $1)"), R"(SELECT 'it\'s $1', ?)");
}

TEST(Placeholders, PostgreSqlEscapeStringsHonourBackslashes) {
  EXPECT_EQ(translate_placeholders(R"(SELECT E'a\'$1', $1)", kPg).max_placeholder, 1u);
  // Not an E string: the backslash is a character and the quote ends the literal.
  EXPECT_EQ(lite(R"(SELECT 'a\', $1)"), R"(SELECT 'a\', ?1)");
}

TEST(Placeholders, QuotedIdentifiersAreLeftAlone) {
  EXPECT_EQ(lite(R"(SELECT "col$1", `x$2`, [y$3], $1 FROM t)"),
            R"(SELECT "col$1", `x$2`, [y$3], ?1 FROM t)");
  EXPECT_EQ(my(R"(SELECT `a``$1`, $1)"), R"(SELECT `a``$1`, ?)");
}

TEST(Placeholders, BracketsAreIdentifiersOnlyInSqlite) {
  // In PostgreSQL [ ] subscripts an array; its placeholder is a real one.
  EXPECT_EQ(translate_placeholders("SELECT a[$1] FROM t", kPg).max_placeholder, 1u);
}

TEST(Placeholders, CommentsAreLeftAlone) {
  EXPECT_EQ(lite("SELECT $1 -- not $2\n, /* nor $3 */ $2"),
            "SELECT ?1 -- not $2\n, /* nor $3 */ ?2");
  EXPECT_EQ(my("SELECT $1 # not $2\n, $2"), "SELECT ? # not $2\n, ?");
}

TEST(Placeholders, PostgreSqlBlockCommentsNest) {
  EXPECT_EQ(translate_placeholders("SELECT /* a /* b */ $2 */ $1", kPg).max_placeholder, 1u);
  // MySQL ends the comment at the first */.
  EXPECT_EQ(my("SELECT /* a /* b */ $1"), "SELECT /* a /* b */ ?");
}

TEST(Placeholders, MySqlNeedsASpaceAfterDoubleDashForAComment) {
  EXPECT_EQ(my("SELECT 5--$1"), "SELECT 5--?");
  EXPECT_EQ(my("SELECT 5 -- $1"), "SELECT 5 -- $1");
}

TEST(Placeholders, DollarQuotesAreLeftAlone) {
  EXPECT_EQ(lite("SELECT $$ $1 $$, $fn$ $2 $fn$, $1"), "SELECT $$ $1 $$, $fn$ $2 $fn$, ?1");
  EXPECT_EQ(translate_placeholders("SELECT $q$ $2 $q$, $1", kPg).max_placeholder, 1u);
}

TEST(Placeholders, ADollarInsideAnIdentifierIsPartOfIt) {
  EXPECT_EQ(my("SELECT a$1, $1 FROM t$2"), "SELECT a$1, ? FROM t$2");
}

TEST(Placeholders, NativeQuestionMarksAloneRunUnchanged) {
  const auto t = translate_placeholders("SELECT ? , ?", kMy);
  EXPECT_EQ(t.sql, "SELECT ? , ?");
  EXPECT_EQ(t.max_placeholder, 0u);
  EXPECT_EQ(bind_in_order(t, Params{1, 2}).size(), 2u);
  EXPECT_EQ(lite("SELECT ?1, ?"), "SELECT ?1, ?");
}

TEST(Placeholders, MixingQuestionMarksAndDollarsIsRefused) {
  EXPECT_THROW(translate_placeholders("SELECT ?, $1", kMy), UsageError);
  EXPECT_THROW(translate_placeholders("SELECT ?, $1", kLite), UsageError);
  // A ? inside a literal is not a placeholder.
  EXPECT_EQ(my("SELECT '?', $1"), "SELECT '?', ?");
}

TEST(Placeholders, QuestionMarkIsAnOperatorInPostgreSql) {
  const auto t = translate_placeholders("SELECT doc ? $1, doc ?| $2 FROM t", kPg);
  EXPECT_EQ(t.sql, "SELECT doc ? $1, doc ?| $2 FROM t");
  EXPECT_EQ(t.max_placeholder, 2u);
}

TEST(Placeholders, DollarZeroAndHugeNumbersAreRefused) {
  EXPECT_THROW(translate_placeholders("SELECT $0", kLite), UsageError);
  EXPECT_THROW(translate_placeholders("SELECT $99999", kMy), UsageError);
}

TEST(Placeholders, UnterminatedLiteralsAreLeftForTheDatabaseToReport) {
  EXPECT_EQ(lite("SELECT $1, 'abc $2"), "SELECT ?1, 'abc $2");
  EXPECT_EQ(my("SELECT $1 /* $2"), "SELECT ? /* $2");
}

TEST(Placeholders, ALoneDollarIsCopied) {
  EXPECT_EQ(lite("SELECT '$' || $1, $ x"), "SELECT '$' || ?1, $ x");
}

}  // namespace
}  // namespace xact::sql
