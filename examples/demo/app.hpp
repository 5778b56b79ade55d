// The demo application, independent of any transport: its stores, one handler per request kind
// and the invariant check.
//
// Each handler takes the attempt's `xact::Transaction&`, the worker it runs on (a transaction
// manager and an object-store connection of its own) and the request's data. The load
// generator calls them through xact::run (retry on conflict); an HTTP route on the request
// wrapper (issue 20) would call the same functions with the data it parsed from the request.
//
// Stores, all under one directory (except the volatile ones):
//   main.xfs      accounts, profiles (their sheet keys and edit counters), session counters:
//                 persistent objects in a file storage (database "main", xrefs = forbid)
//   "sessions"    a second, volatile object database of the same registry on a memory
//                 storage (xrefs = check): each session's state object, which refers to the
//                 account its last request touched in "main". The seat belt allows
//                 sessions -> main (the type's policy) and refuses main -> sessions.
//   profiles.db   the profiles' property sheets (xact::sheets) in SQLite, the last resource
//   log/          the durable decision log; recovery runs on it before anything else
//   sessions      in memory (xact::sessions::MemorySessionStore): writes compensated on abort,
//                 gone with the process
// With XACT_PG_URI set (and the demo built with the PostgreSQL adapter) the sheets go to
// PostgreSQL instead, in a table named for the data directory; with XACT_MYSQL_HOST/PORT/USER/
// PASSWORD/DB set (and the MySQL adapter) the sessions go to a MyISAM table
// (xact::mysql::MyIsamSessionStore), shared by processes and surviving them.
#pragma once

#include <xact/decision_log.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/connection.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/recovery.hpp>
#include <xact/sessions/session_resource.hpp>
#include <xact/sheets/sheet_store.hpp>
#include <xact/sql/connection.hpp>
#include <xact/sql/sql_resource.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace demo {

struct AppOptions {
  std::filesystem::path dir;
  int accounts = 8;                     ///< the hot set of accounts (created on first start)
  int profiles = 4;                     ///< the hot set of profiles (created on first start)
  int sessions = 4;                     ///< sessions of this process (new ids each start)
  std::int64_t opening_balance = 1000;  ///< of each account
  /// Put the sheets on PostgreSQL (XACT_PG_URI) and the sessions in a MyISAM table
  /// (XACT_MYSQL_*) when those are set; false: the embedded stores whatever the environment says.
  bool use_servers = true;
};

/// One request of each kind.
struct TransferRequest {
  int from = 0;
  int to = 1;
  std::int64_t amount = 1;
};
struct ProfileEditRequest {
  int profile = 0;
  std::string bio;
};
struct SessionUpdateRequest {
  int session = 0;  ///< index into App::session_ids()
};

class App;

/// What a handler runs on: a transaction manager and a connection to "main" (with, through
/// get_connection, the one to "sessions" of the same set). One per client thread with a
/// manager of its own, or one per attempt on the request's manager (the HTTP server).
class Worker {
 public:
  explicit Worker(App& app);
  Worker(App& app, xact::TransactionManager& manager);
  xact::TransactionManager& manager() { return *tm_; }
  xact::objectstore::Connection& objects() { return *conn_; }
  xact::objectstore::Connection& sessions_db() { return conn_->get_connection("sessions"); }

 private:
  std::unique_ptr<xact::ExplicitTransactionManager> own_;
  xact::TransactionManager* tm_;
  xact::objectstore::ConnectionHandle conn_;
};

/// The handlers: each is one attempt of one request, in `txn` (begun by the caller, who commits
/// and retries: xact::run, or the HTTP wrapper's retry loop). They return what a response would
/// carry: the amount moved, the profile's committed edits after this one, the session's value.
std::int64_t transfer(xact::Transaction& txn, Worker& w, App& app, const TransferRequest& r);
std::int64_t edit_profile(xact::Transaction& txn, Worker& w, App& app, const ProfileEditRequest& r);
std::int64_t update_session(xact::Transaction& txn, Worker& w, App& app,
                            const SessionUpdateRequest& r);

/// A request as a transport hands it over: a route and its parameters, as text.
///   /transfer  from=<account> to=<account> amount=<n>
///   /profile   profile=<n> bio=<text>
///   /session   session=<n>
struct Request {
  std::string route;
  std::map<std::string, std::string, std::less<>> params;
};
/// The routes' dispatcher, what an HTTP route on the request wrapper calls with the attempt's
/// transaction: parses the parameters, runs the handler, returns the response body (a number).
/// xact::UsageError for an unknown route or a missing, malformed or out-of-range parameter
/// (a 400 for HTTP): checked before anything is changed.
std::string handle(xact::Transaction& txn, Worker& w, App& app, const Request& r);

struct CheckResult {
  bool pass = true;
  std::vector<std::string> lines;  ///< one per invariant, "ok ..." or "FAILED ..."; and
                                   ///< "waited ..." for each wait for a server or the re-driver
};

class App {
 public:
  /// Opens (creating what is missing) every store, runs recovery, creates the hot set on the
  /// first start and this process's sessions.
  explicit App(AppOptions options);
  ~App();

  const AppOptions& options() const { return options_; }
  const std::shared_ptr<xact::DecisionLog>& log() const { return log_; }
  xact::objectstore::DB& db() { return *db_; }
  xact::objectstore::DB& sessions_db() { return *sessions_db_; }
  xact::objectstore::Databases& databases() { return *dbs_; }
  xact::sheets::SheetStore& sheets() { return *sheets_; }
  xact::sessions::SessionResource& sessions() { return *sessions_; }
  const std::vector<std::string>& session_ids() const { return session_ids_; }
  int accounts() const { return accounts_; }
  int profiles() const { return profiles_; }
  const std::string& sheet_name() const { return sheet_; }
  /// Where each store is, in one line.
  const std::string& describe_stores() const { return stores_; }
  /// Drops what the demo made on a server (the sheet table and its catalog rows, this process's
  /// sessions): for a data directory that is removed at exit.
  void drop_server_data();
  /// What recovery did at start, in one line.
  const std::string& recovery_summary() const { return recovery_summary_; }
  /// Whether recovery at start decided everything it found (a FAIL otherwise).
  bool recovery_complete() const { return recovery_complete_; }
  /// What the start waited for (a server restarting, recovery's owed work), one line each.
  const std::vector<std::string>& start_waits() const { return start_waits_; }

  /// The invariants, read from the stores (call with no request running). It first waits (up to
  /// 30 s) for the re-driver to finish what an outage left it, and retries a read that fails
  /// because a server does not answer (up to 30 s); each wait is a line of its own.
  CheckResult check();

 private:
  AppOptions options_;
  std::shared_ptr<xact::DecisionLog> log_;
  std::shared_ptr<xact::objectstore::Databases> dbs_;
  std::shared_ptr<xact::objectstore::DB> db_;
  std::shared_ptr<xact::objectstore::DB> sessions_db_;
  std::shared_ptr<xact::sql::SqlResource> sql_;
  std::function<std::unique_ptr<xact::sql::Connection>()> plain_;  ///< outside transactions
  bool sql_on_server_ = false;
  std::string sheet_;  ///< the profiles' sheet (and table) name
  std::string stores_;
  std::shared_ptr<xact::sheets::SheetStore> sheets_;
  std::shared_ptr<xact::sessions::SessionResource> sessions_;
  std::vector<std::string> session_ids_;
  int accounts_ = 0;
  int profiles_ = 0;
  std::int64_t total_ = 0;
  std::string recovery_summary_;
  bool recovery_complete_ = true;
  std::vector<std::string> start_waits_;
};

}  // namespace demo
