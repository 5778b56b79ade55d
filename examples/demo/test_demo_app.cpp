// The demo's application layer: the routes' dispatcher and the invariant check, on real files
// (a file storage, SQLite, a decision log) in a temporary directory.
#include "app.hpp"
#include "server.hpp"

#include <xact/errors.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/storage.hpp>
#include <xact/retry.hpp>
#include <xact/sqlite/sqlite_resource.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

namespace {

class DemoAppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("xact-demo-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  demo::AppOptions options() const {
    demo::AppOptions o;
    o.dir = dir_;
    o.use_servers = false;  // these tests read and tamper with the embedded files
    o.accounts = 3;
    o.profiles = 2;
    o.sessions = 2;
    o.opening_balance = 100;
    return o;
  }
  static std::string call(demo::App& app, demo::Worker& w, demo::Request r) {
    return xact::run(w.manager(),
                     [&](xact::Transaction& txn) { return demo::handle(txn, w, app, r); });
  }

  std::filesystem::path dir_;
};

TEST_F(DemoAppTest, RoutesAnswerAndTheCheckPasses) {
  demo::App app(options());
  demo::Worker w(app);
  EXPECT_EQ(call(app, w, {"/transfer", {{"from", "0"}, {"to", "1"}, {"amount", "30"}}}), "30");
  // Only what the account holds moves.
  EXPECT_EQ(call(app, w, {"/transfer", {{"from", "0"}, {"to", "2"}, {"amount", "500"}}}), "70");
  EXPECT_EQ(call(app, w, {"/transfer", {{"from", "0"}, {"to", "1"}, {"amount", "5"}}}), "0");
  EXPECT_EQ(call(app, w, {"/profile", {{"profile", "1"}, {"bio", "a"}}}), "1");
  EXPECT_EQ(call(app, w, {"/profile", {{"profile", "1"}, {"bio", "b"}}}), "2");
  EXPECT_EQ(call(app, w, {"/session", {{"session", "0"}}}), "1");
  EXPECT_EQ(call(app, w, {"/session", {{"session", "0"}}}), "2");
  const auto c = app.check();
  EXPECT_TRUE(c.pass) << ::testing::PrintToString(c.lines);
  ASSERT_EQ(c.lines.size(), 6U);
  EXPECT_NE(c.lines[1].find("2 edits"), std::string::npos) << c.lines[1];
  EXPECT_NE(c.lines[2].find("2 updates"), std::string::npos) << c.lines[2];
  EXPECT_NE(c.lines[3].find(", 0 such references"), std::string::npos) << c.lines[3];
  EXPECT_NE(c.lines[4].find("refused at commit (cross-database reference refused"),
            std::string::npos)
      << c.lines[4];
  EXPECT_EQ(
      c.lines[5].rfind("ok      nothing left unfinished: the re-driver owes 0, 0 branches", 0), 0U)
      << c.lines[5];
}

// The same routes over HTTP (xact::http on loopback): answers, 400 for a bad request and 404
// for an unknown route (nothing changed), the route metrics on /metrics.
TEST_F(DemoAppTest, TheRoutesAreServedOverHttp) {
  demo::App app(options());
  demo::Server server(app, 2);
  demo::Client http(server.port());
  auto ok = [&](demo::Request r) {
    const auto res = http.send(r);
    EXPECT_EQ(res.status, 200U) << r.route << ": " << res.body;
    return res.body;
  };
  EXPECT_EQ(ok({"/transfer", {{"from", "0"}, {"to", "1"}, {"amount", "30"}}}), "30");
  EXPECT_EQ(ok({"/profile", {{"profile", "1"}, {"bio", "over http"}}}), "1");
  EXPECT_EQ(ok({"/session", {{"session", "0"}}}), "1");
  EXPECT_EQ(http.send({"/transfer", {{"from", "0"}, {"to", "1"}, {"amount", "0"}}}).status, 400U);
  EXPECT_EQ(http.send({"/profile", {{"profile", "9"}, {"bio", "x"}}}).status, 400U);
  EXPECT_EQ(http.send({"/nope", {}}).status, 404U);
  const auto metrics = http.send({"/metrics", {}}, true);
  EXPECT_EQ(metrics.status, 200U);
  EXPECT_NE(metrics.body.find("/transfer"), std::string::npos) << metrics.body;
  const auto totals = server.totals();
  EXPECT_EQ(totals.requests, 5U);  // the three answered and the two refused (400)
  server.stop();
  const auto c = app.check();
  EXPECT_TRUE(c.pass) << ::testing::PrintToString(c.lines);
  EXPECT_NE(c.lines[0].find("hold 300 of 300"), std::string::npos) << c.lines[0];
  EXPECT_NE(c.lines[1].find("1 edits"), std::string::npos) << c.lines[1];
  EXPECT_NE(c.lines[2].find("1 updates"), std::string::npos) << c.lines[2];
}

TEST_F(DemoAppTest, BadRequestsAreUsageErrorsAndChangeNothing) {
  demo::App app(options());
  demo::Worker w(app);
  const std::vector<demo::Request> bad = {
      {"/nope", {}},
      {"/transfer", {{"from", "0"}, {"to", "1"}}},
      {"/transfer", {{"from", "0"}, {"to", "3"}, {"amount", "1"}}},
      {"/transfer", {{"from", "0"}, {"to", "1"}, {"amount", "0"}}},
      {"/transfer", {{"from", "0"}, {"to", "1"}, {"amount", "1x"}}},
      {"/profile", {{"profile", "0"}}},
      {"/session", {{"session", "-1"}}},
  };
  for (const auto& r : bad) {
    EXPECT_THROW(call(app, w, r), xact::UsageError) << r.route;
  }
  const auto c = app.check();
  EXPECT_TRUE(c.pass) << ::testing::PrintToString(c.lines);
  EXPECT_NE(c.lines[1].find("0 edits"), std::string::npos) << c.lines[1];
}

// The check is not a rubber stamp: a sheet row or a session value changed behind xact's back
// makes it fail, naming what differs.
TEST_F(DemoAppTest, TheCheckFailsOnChangesBehindXactsBack) {
  demo::App app(options());
  demo::Worker w(app);
  call(app, w, {"/profile", {{"profile", "0"}, {"bio", "a"}}});
  call(app, w, {"/session", {{"session", "1"}}});
  ASSERT_TRUE(app.check().pass);

  app.sessions().store().set(app.session_ids()[1], "updates", "7");
  auto c = app.check();
  EXPECT_FALSE(c.pass);
  EXPECT_EQ(c.lines[2].rfind("FAILED", 0), 0U) << c.lines[2];
  EXPECT_NE(c.lines[2].find("value 7, sessions database 1, committed 1"), std::string::npos)
      << c.lines[2];
  app.sessions().store().set(app.session_ids()[1], "updates", "1");
  ASSERT_TRUE(app.check().pass);

  {
    xact::sqlite::SqliteOptions so;
    so.path = (dir_ / "profiles.db").string();
    so.name = "sqlite:tamper";
    xact::sqlite::SqliteResource::create(so)->open_connection()->execute(
        "UPDATE profile SET edits = edits + 1");
  }
  c = app.check();
  EXPECT_FALSE(c.pass);
  EXPECT_EQ(c.lines[1].rfind("FAILED", 0), 0U) << c.lines[1];
}

// A reference from main into sessions that got past the seat belt (written into main's storage
// directly, as an older program without the seat belt could have) fails the check.
TEST_F(DemoAppTest, TheCheckFindsAReferenceFromMainIntoSessions) {
  demo::App app(options());
  ASSERT_TRUE(app.check().pass);
  namespace os = xact::objectstore;
  std::string data;
  os::encode_header(data, "demo.Pin", 1);
  os::StateWriter out(data);
  out.write_typed_xref({"sessions", 2, "demo.SessionState"});
  os::CommitRequest req;
  req.writes.push_back({app.db().storage().new_oid(), os::kNoTid, std::move(data)});
  app.db().storage().commit_one_phase(std::move(req));
  const auto c = app.check();
  EXPECT_FALSE(c.pass);
  EXPECT_EQ(c.lines[3].rfind("FAILED", 0), 0U) << c.lines[3];
  EXPECT_NE(c.lines[3].find(", 1 such references"), std::string::npos) << c.lines[3];
}

// Everything but the in-memory sessions survives a restart; recovery at start finds nothing.
TEST_F(DemoAppTest, ReopenKeepsObjectsAndSheets) {
  {
    demo::App app(options());
    demo::Worker w(app);
    call(app, w, {"/transfer", {{"from", "2"}, {"to", "0"}, {"amount", "40"}}});
    call(app, w, {"/profile", {{"profile", "0"}, {"bio", "a"}}});
  }
  auto o = options();
  o.accounts = 5;  // the first start decided: ignored now
  demo::App app(o);
  EXPECT_EQ(app.recovery_summary(), "nothing to do");
  EXPECT_EQ(app.accounts(), 3);
  demo::Worker w(app);
  EXPECT_EQ(call(app, w, {"/profile", {{"profile", "0"}, {"bio", "b"}}}), "2");
  EXPECT_EQ(call(app, w, {"/transfer", {{"from", "0"}, {"to", "1"}, {"amount", "1000"}}}), "140");
  const auto c = app.check();
  EXPECT_TRUE(c.pass) << ::testing::PrintToString(c.lines);
}

}  // namespace
