#include "app.hpp"

#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/errors.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/objectstore/memory_storage.hpp>
#include <xact/redriver.hpp>
#include <xact/retry.hpp>
#include <xact/sessions/memory_session_store.hpp>
#include <xact/sheets/sheet_owner.hpp>
#include <xact/sql/errors.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#if defined(XACT_DEMO_WITH_POSTGRES)
#include <xact/postgres/postgres_resource.hpp>
#endif
#if defined(XACT_DEMO_WITH_MYSQL)
#include <xact/mysql/myisam_session_store.hpp>
#endif

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

namespace demo {
namespace {

namespace os = xact::objectstore;

class Account : public os::Persistent {
 public:
  Account() = default;
  explicit Account(std::int64_t balance) : balance_(balance) {}
  std::int64_t balance() const {
    read_access();
    return balance_;
  }
  void add(std::int64_t amount) {
    write_access();
    balance_ += amount;
  }
  void save(os::StateWriter& out) const override { out.write(balance_); }
  void load(os::StateReader& in, std::uint32_t) override { in.read(balance_); }

 private:
  std::int64_t balance_ = 0;
};
XACT_PERSISTENT_TYPE(Account, "demo.Account");

// A user's profile: its sheet "profile" (bio, edits) lives in SQLite; the object keeps the
// sheet's key and its own count of committed edits.
class Profile : public xact::sheets::SheetOwner {
 public:
  std::int64_t edits() const {
    read_access();
    return edits_;
  }
  void count_edit() {
    write_access();
    ++edits_;
  }
  void save(os::StateWriter& out) const override {
    save_sheets(out);
    out.write(edits_);
  }
  void load(os::StateReader& in, std::uint32_t) override {
    load_sheets(in);
    in.read(edits_);
  }

 private:
  std::int64_t edits_ = 0;
};
XACT_PERSISTENT_TYPE(Profile, "demo.Profile");

// A counter in the object store: committed session updates of one session, and the bank's
// figures (number of accounts, money in it).
class Counter : public os::Persistent {
 public:
  Counter() = default;
  explicit Counter(std::int64_t n) : n_(n) {}
  std::int64_t value() const {
    read_access();
    return n_;
  }
  void add(std::int64_t d) {
    write_access();
    n_ += d;
  }
  void save(os::StateWriter& out) const override { out.write(n_); }
  void load(os::StateReader& in, std::uint32_t) override { in.read(n_); }

 private:
  std::int64_t n_ = 0;
};
XACT_PERSISTENT_TYPE(Counter, "demo.Counter");

// A session's state in the volatile "sessions" database: the main database's count of the
// session's committed updates when this process started (`base`), the updates committed since,
// and the account its last request touched, in "main": a cross-database reference that the
// type's policy allows (sessions -> main).
class SessionState : public os::Persistent {
 public:
  SessionState() = default;
  explicit SessionState(std::int64_t base) : base_(base) {}
  std::int64_t base() const {
    read_access();
    return base_;
  }
  std::int64_t updates() const {
    read_access();
    return updates_;
  }
  void count(std::shared_ptr<Account> touched) {
    write_access();
    ++updates_;
    last_account_ = std::move(touched);
  }
  void save(os::StateWriter& out) const override {
    out.write(base_);
    out.write(updates_);
    out.write(last_account_);
  }
  void load(os::StateReader& in, std::uint32_t) override {
    in.read(base_);
    in.read(updates_);
    in.read(last_account_);
  }
  std::optional<bool> check_xref(const os::XrefCheck& x) const override {
    return x.target_database == "main";
  }

 private:
  std::int64_t base_ = 0;
  std::int64_t updates_ = 0;
  os::Ref<Account> last_account_;
};
XACT_PERSISTENT_TYPE(SessionState, "demo.SessionState");

// What a main object may not hold: a reference to a session's state (main -> sessions). Used
// by the check to show that the seat belt refuses it.
class Pin : public os::Persistent {
 public:
  void pin(std::shared_ptr<SessionState> s) {
    write_access();
    session_ = std::move(s);
  }
  void save(os::StateWriter& out) const override { out.write(session_); }
  void load(os::StateReader& in, std::uint32_t) override { in.read(session_); }

 private:
  os::Ref<SessionState> session_;
};
XACT_PERSISTENT_TYPE(Pin, "demo.Pin");

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// The sheet's name: "profile" in the directory's own SQLite file; on a shared server one per
// data directory ("demo_profile_<hex>"), chosen at the first start and kept in the directory.
std::string choose_sheet_name(const std::filesystem::path& dir, bool on_server) {
  if (!on_server) return "profile";
  const auto file = dir / "sheet-name";
  std::string name;
  if (std::ifstream in(file); in && std::getline(in, name) && !name.empty()) return name;
  std::mt19937_64 rng(std::random_device{}());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(rng()));
  name = std::string("demo_profile_") + hex;
  std::ofstream(file) << name << "\n";
  return name;
}

// A server that does not answer (killed and restarting, down for a while) is waited for this
// long before the failure is reported: longer than a crash restart of either server takes (2-5
// s here, PostgreSQL's crash recovery included), short enough for a test's timeout.
constexpr auto kServerWait = std::chrono::seconds(30);

// Whether `error` says a server did not answer: the SQL adapters and the MyISAM session store
// map a refused or cut connection to ConnectionLost. Anything else is reported at once.
bool server_unreachable(const std::exception_ptr& error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const xact::sql::ConnectionLost&) {
    return true;
  } catch (...) {
    return false;
  }
}

std::string seconds_since(std::chrono::steady_clock::time_point t0) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return buf;
}

// Runs `fn` again (backing off from 50 ms to 1 s) while it fails because a server does not
// answer, for up to kServerWait; after that, or for any other error, the error goes to the
// caller. A wait is noted in `waits` ("waited 2.3 s for <what>: <the first error>"), so that the
// output says why the demo paused; `fn` must be safe to run again (reads, idempotent set-up).
template <class F>
void when_reachable(const std::string& what, std::vector<std::string>& waits, F&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string first_error;
  for (auto backoff = std::chrono::milliseconds(50);;
       backoff = std::min(backoff * 2, std::chrono::milliseconds(1000))) {
    try {
      fn();
      if (!first_error.empty()) {
        waits.push_back("waited " + seconds_since(t0) + " for " + what + ": " + first_error);
      }
      return;
    } catch (...) {
      const std::exception_ptr e = std::current_exception();
      if (!server_unreachable(e) || std::chrono::steady_clock::now() - t0 >= kServerWait) {
        if (!first_error.empty()) {
          waits.push_back("waited " + seconds_since(t0) + " for " + what +
                          " in vain: " + xact::error_message(e));
        }
        throw;
      }
      if (first_error.empty()) {
        first_error = xact::error_message(e);
        first_error = first_error.substr(0, first_error.find('\n'));
      }
    }
    std::this_thread::sleep_for(backoff);
  }
}

std::string account_key(int i) { return "account:" + std::to_string(i); }
std::string profile_key(int i) { return "profile:" + std::to_string(i); }
std::string session_key(const std::string& sid) { return "session:" + sid; }

}  // namespace

Worker::Worker(App& app)
    : own_(std::make_unique<xact::ExplicitTransactionManager>(
          xact::ManagerOptions{app.log(), std::nullopt})),
      tm_(own_.get()) {
  os::ConnectionOptions o;
  o.manager = tm_;
  conn_ = app.databases().open(o);
}

Worker::Worker(App& app, xact::TransactionManager& manager) : tm_(&manager) {
  os::ConnectionOptions o;
  o.manager = tm_;
  conn_ = app.databases().open(o);
}

std::int64_t transfer(xact::Transaction&, Worker& w, App&, const TransferRequest& r) {
  auto root = w.objects().root();
  auto from = root->get<Account>(account_key(r.from));
  auto to = root->get<Account>(account_key(r.to));
  const std::int64_t amount = std::min(r.amount, from->balance());
  if (amount <= 0 || r.from == r.to) return 0;
  from->add(-amount);
  to->add(amount);
  return amount;
}

std::int64_t edit_profile(xact::Transaction& txn, Worker& w, App& app,
                          const ProfileEditRequest& r) {
  auto p = w.objects().root()->get<Profile>(profile_key(r.profile));
  auto& sheet = p->sheet(app.sheet_name(), txn);
  sheet.set("bio", r.bio);
  sheet.set("edits", sheet.get<std::int64_t>("edits") + 1);
  p->count_edit();
  return p->edits();
}

std::int64_t update_session(xact::Transaction& txn, Worker& w, App& app,
                            const SessionUpdateRequest& r) {
  const std::string& sid = app.session_ids().at(static_cast<std::size_t>(r.session));
  auto v = app.sessions().get(txn, sid, "updates");
  const std::int64_t n = v ? std::stoll(*v) + 1 : 1;
  app.sessions().set(txn, sid, "updates", std::to_string(n));
  auto root = w.objects().root();
  root->get<Counter>(session_key(sid))->add(1);
  // The session's state in the volatile database refers to an account in main.
  const int account = static_cast<int>(n % app.accounts());
  w.sessions_db()
      .root()
      ->get<SessionState>(session_key(sid))
      ->count(root->get<Account>(account_key(account)));
  return n;
}

namespace {

const std::string& param(const Request& r, std::string_view name) {
  const auto it = r.params.find(name);
  if (it == r.params.end()) {
    throw xact::UsageError(r.route + ": parameter " + std::string(name) + " is missing");
  }
  return it->second;
}

std::int64_t int_param(const Request& r, std::string_view name, std::int64_t lo, std::int64_t hi) {
  const std::string& text = param(r, name);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) {
    throw xact::UsageError(r.route + ": parameter " + std::string(name) + " must be a number in [" +
                           std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return v;
}

}  // namespace

std::string handle(xact::Transaction& txn, Worker& w, App& app, const Request& r) {
  if (r.route == "/transfer") {
    TransferRequest t;
    t.from = static_cast<int>(int_param(r, "from", 0, app.accounts() - 1));
    t.to = static_cast<int>(int_param(r, "to", 0, app.accounts() - 1));
    t.amount = int_param(r, "amount", 1, std::int64_t{1} << 40);
    return std::to_string(transfer(txn, w, app, t));
  }
  if (r.route == "/profile") {
    ProfileEditRequest e;
    e.profile = static_cast<int>(int_param(r, "profile", 0, app.profiles() - 1));
    e.bio = param(r, "bio");
    return std::to_string(edit_profile(txn, w, app, e));
  }
  if (r.route == "/session") {
    SessionUpdateRequest u;
    u.session = static_cast<int>(
        int_param(r, "session", 0, static_cast<std::int64_t>(app.session_ids().size()) - 1));
    return std::to_string(update_session(txn, w, app, u));
  }
  throw xact::UsageError("no route " + r.route + " (routes: /transfer, /profile, /session)");
}

App::App(AppOptions options) : options_(std::move(options)) {
  namespace fs = std::filesystem;
  fs::create_directories(options_.dir);
  // The servers' settings, unless the options keep the demo on the embedded stores.
  const auto server_env = [this](const char* name) {
    return options_.use_servers ? env(name) : std::string();
  };
  log_ = xact::DecisionLog::open(xact::io::Env::posix(), (options_.dir / "log").string());
  // Two object databases in one registry: "main" holds no cross-database reference at all,
  // "sessions" (volatile: a memory storage) may refer into main, as SessionState allows.
  dbs_ = os::Databases::create();
  db_ = os::DB::open(os::FileStorage::open((options_.dir / "main.xfs").string()),
                     {.name = "main", .xrefs = os::XrefPolicy::forbid});
  sessions_db_ = os::DB::open(std::make_shared<os::MemoryStorage>(),
                              {.name = "sessions", .xrefs = os::XrefPolicy::check});
  dbs_->add(db_);
  dbs_->add(sessions_db_);
  const std::string pg_uri = server_env("XACT_PG_URI");
#if defined(XACT_DEMO_WITH_POSTGRES)
  if (!pg_uri.empty()) {
    xact::postgres::PostgresOptions po;
    po.conninfo = pg_uri;
    po.name = "postgres:profiles";
    auto pg = xact::postgres::PostgresResource::create(po);
    plain_ = [pg]() -> std::unique_ptr<xact::sql::Connection> { return pg->open_connection(); };
    sql_ = pg;
    sql_on_server_ = true;
    stores_ = "sheets in PostgreSQL";
  }
#else
  if (!pg_uri.empty()) stores_ = "XACT_PG_URI ignored (built without the PostgreSQL adapter); ";
#endif
  if (!sql_) {
    xact::sqlite::SqliteOptions so;
    so.path = (options_.dir / "profiles.db").string();
    so.name = "sqlite:profiles";
    auto lite = xact::sqlite::SqliteResource::create(so);
    plain_ = [lite]() -> std::unique_ptr<xact::sql::Connection> { return lite->open_connection(); };
    sql_ = lite;
    stores_ += "sheets in SQLite (profiles.db)";
  }
  sheet_ = choose_sheet_name(options_.dir, sql_on_server_);
  stores_ += " table " + sheet_;

  std::shared_ptr<xact::sessions::SessionStore> session_store;
  bool sessions_persist = false;  // a store that outlives the process: keep the session ids
#if defined(XACT_DEMO_WITH_MYSQL)
  if (!server_env("XACT_MYSQL_HOST").empty() && !server_env("XACT_MYSQL_PORT").empty()) {
    xact::mysql::MyIsamSessionStoreOptions mo;
    mo.connect.host = server_env("XACT_MYSQL_HOST");
    mo.connect.port = static_cast<unsigned>(std::stoul(server_env("XACT_MYSQL_PORT")));
    mo.connect.user = server_env("XACT_MYSQL_USER");
    mo.connect.password = server_env("XACT_MYSQL_PASSWORD");
    mo.connect.database = server_env("XACT_MYSQL_DB");
    mo.table = "xact_demo_sessions";
    when_reachable("MariaDB (the session table)", start_waits_,
                   [&] { session_store = xact::mysql::MyIsamSessionStore::open(mo); });
    stores_ += ", sessions in MariaDB/MySQL (MyISAM table xact_demo_sessions)";
    sessions_persist = true;
  }
#else
  if (!server_env("XACT_MYSQL_HOST").empty()) {
    stores_ += ", XACT_MYSQL_* ignored (built without the MySQL adapter)";
  }
#endif
  if (!session_store) {
    session_store = std::make_shared<xact::sessions::MemorySessionStore>();
    stores_ += ", sessions in memory";
  }
  sessions_ = xact::sessions::SessionResource::create(session_store,
                                                      {.name = "sessions", .decision_log = log_});

  // Whatever a crash left prepared is decided before anything else runs.
  xact::Recovery recovery(log_);
  recovery.register_resource(db_->recovery_target());
  recovery.register_resource(sessions_db_->recovery_target());
  recovery.register_resource(sql_);
  recovery.register_resource(sessions_);
  // A server that does not answer leaves its branches owed: run again until it does (a server
  // restarting while this process starts), for up to kServerWait; what is still owed then is
  // reported INCOMPLETE (a FAIL).
  const auto t0 = std::chrono::steady_clock::now();
  xact::RecoveryReport report = recovery.run();
  std::vector<xact::RecoveryAction> actions = report.actions;
  std::string first_owed;
  for (auto backoff = std::chrono::milliseconds(50);
       !report.complete() && std::chrono::steady_clock::now() - t0 < kServerWait;
       backoff = std::min(backoff * 2, std::chrono::milliseconds(1000))) {
    if (first_owed.empty()) {
      first_owed = report.owed.front().resource + ": " + report.owed.front().reason;
      first_owed = first_owed.substr(0, first_owed.find('\n'));
    }
    std::this_thread::sleep_for(backoff);
    report = recovery.run();
    actions.insert(actions.end(), report.actions.begin(), report.actions.end());
  }
  if (!first_owed.empty()) {
    start_waits_.push_back("recovery waited " + seconds_since(t0) + " for " + first_owed);
  }
  // One line: how many branches each kind of action decided ("2 commit (objects:main), ...").
  std::map<std::string, std::pair<int, std::set<std::string>>> kinds;
  for (const auto& a : actions) {
    auto& k = kinds[std::string(xact::to_string(a.kind))];
    ++k.first;
    if (!a.resource.empty()) k.second.insert(a.resource);
  }
  for (const auto& [kind, k] : kinds) {
    recovery_summary_ +=
        (recovery_summary_.empty() ? "" : ", ") + std::to_string(k.first) + " " + kind;
    std::string rs;
    for (const auto& r : k.second) rs += (rs.empty() ? "" : " ") + r;
    if (!rs.empty()) recovery_summary_ += " (" + rs + ")";
  }
  if (recovery_summary_.empty()) recovery_summary_ = "nothing to do";
  if (!report.complete()) recovery_summary_ += "; INCOMPLETE:\n" + report.describe();
  recovery_complete_ = report.complete();

  sheets_ = xact::sheets::SheetStore::create(sql_);
  sheets_->define({sheet_,
                   {
                       {.name = "bio",
                        .type = xact::sheets::PropertyType::text,
                        .nullable = false,
                        .default_value = ""},
                       {.name = "edits",
                        .type = xact::sheets::PropertyType::int64,
                        .nullable = false,
                        .default_value = 0},
                   }});
  when_reachable("PostgreSQL (the sheet table)", start_waits_, [&] { sheets_->ensure(sheet_); });

  // In-memory sessions die with the process: each start has sessions of its own. A MyISAM
  // store keeps them, so the directory keeps their ids and every start checks them all.
  const auto ids_file = options_.dir / "session-ids";
  if (sessions_persist) {
    std::ifstream in(ids_file);
    for (std::string id; std::getline(in, id);) {
      if (!id.empty()) session_ids_.push_back(id);
    }
  }
  while (session_ids_.size() < static_cast<std::size_t>(options_.sessions)) {
    session_ids_.push_back(xact::sessions::new_session_id());
  }
  if (sessions_persist) {
    std::ofstream out(ids_file, std::ios::trunc);
    for (const auto& id : session_ids_) out << id << "\n";
  }
  Worker w(*this);
  xact::run(w.manager(), [&](xact::Transaction& txn) {
    auto root = w.objects().root();
    if (!root->contains("bank.accounts")) {
      root->set("bank.accounts", std::make_shared<Counter>(options_.accounts));
      root->set("bank.total",
                std::make_shared<Counter>(options_.accounts * options_.opening_balance));
      for (int i = 0; i < options_.accounts; ++i) {
        root->set(account_key(i), std::make_shared<Account>(options_.opening_balance));
      }
      root->set("profiles", std::make_shared<Counter>(options_.profiles));
      for (int i = 0; i < options_.profiles; ++i) {
        auto p = std::make_shared<Profile>();
        p->add_sheet(sheet_, txn, &w.objects());
        root->set(profile_key(i), p);
      }
    }
    for (const auto& sid : session_ids_) {
      if (!root->contains(session_key(sid))) {
        root->set(session_key(sid), std::make_shared<Counter>());
      }
    }
  });
  // Each session's state in the (new, empty) volatile database, from the committed count.
  xact::run(w.manager(), [&](xact::Transaction&) {
    auto root = w.objects().root();
    auto sessions_root = w.sessions_db().root();
    for (const auto& sid : session_ids_) {
      sessions_root->set(session_key(sid), std::make_shared<SessionState>(
                                               root->get<Counter>(session_key(sid))->value()));
    }
  });
  xact::run(w.manager(), [&](xact::Transaction&) {
    auto root = w.objects().root();
    accounts_ = static_cast<int>(root->get<Counter>("bank.accounts")->value());
    total_ = root->get<Counter>("bank.total")->value();
    profiles_ = static_cast<int>(root->get<Counter>("profiles")->value());
  });
}

App::~App() = default;

void App::drop_server_data() {
  std::vector<std::string> waits;
  if (sql_on_server_) {
    when_reachable("PostgreSQL", waits, [&] {
      auto c = plain_();
      c->execute("DROP TABLE IF EXISTS " + sheet_);
      c->execute("DELETE FROM xact_sheet_catalog WHERE sheet = $1", {sheet_});
    });
  }
  when_reachable("the session store", waits, [&] {
    for (const auto& sid : session_ids_) sessions_->store().invalidate(sid);
  });
}

CheckResult App::check() {
  CheckResult r;
  auto line = [&](bool ok, const std::string& what) {
    r.lines.push_back((ok ? "ok      " : "FAILED  ") + what);
    if (!ok) r.pass = false;
  };
  // Waits are said, not hidden: one line each, before the invariants they delayed.
  std::vector<std::string> waits;
  auto said = [&] {
    for (const auto& w : waits)
      r.lines.push_back("waited  " + w.substr(std::string("waited ").size()));
    waits.clear();
  };
  // A branch whose phase two failed while its server was down is the re-driver's until the server
  // answers again; the stores agree only once it is finished. Waited for, bounded: what it still
  // owes then is a FAIL below.
  xact::Redriver& redriver = log_->redriver();
  if (const std::size_t owed = redriver.stats().owed; owed > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    const bool idle = redriver.wait_idle(kServerWait);
    waits.push_back("waited " + seconds_since(t0) + " for the re-driver to finish " +
                    std::to_string(owed) + " branch(es)" + (idle ? "" : " in vain"));
  }
  said();

  Worker w(*this);
  std::int64_t sum = 0;
  std::map<std::int64_t, std::int64_t> object_edits;          // profile oid -> edits counted
  std::vector<std::pair<std::string, std::int64_t>> counted;  // session id -> updates
  std::vector<std::int64_t> in_sessions_db;  // base + updates of each session's state
  xact::run(w.manager(), [&](xact::Transaction&) {
    sum = 0;
    object_edits.clear();
    counted.clear();
    in_sessions_db.clear();
    auto sessions_root = w.sessions_db().root();
    auto root = w.objects().root();
    for (int i = 0; i < accounts_; ++i) sum += root->get<Account>(account_key(i))->balance();
    for (int i = 0; i < profiles_; ++i) {
      auto p = root->get<Profile>(profile_key(i));
      object_edits[static_cast<std::int64_t>(p->oid())] = p->edits();
    }
    for (const auto& sid : session_ids_) {
      counted.emplace_back(sid, root->get<Counter>(session_key(sid))->value());
      auto state = sessions_root->get<SessionState>(session_key(sid));
      in_sessions_db.push_back(state->base() + state->updates());
    }
  });
  line(sum == total_, "money conserved: " + std::to_string(accounts_) + " accounts hold " +
                          std::to_string(sum) + " of " + std::to_string(total_));

  // Sheets: version 1 at creation, +1 per committed UPDATE; the row's edits property and the
  // object's counter both count the committed edits.
  xact::sql::Result rows;
  when_reachable(
      sql_on_server_ ? "PostgreSQL (the sheet table)" : "SQLite (the sheet table)", waits,
      [&] { rows = plain_()->execute("SELECT owner_oid, version, edits FROM " + sheet_); });
  said();
  bool sheets_ok = rows.size() == object_edits.size();
  std::int64_t edits = 0;
  std::string detail;
  for (const auto& row : rows) {
    const auto oid = row.get<std::int64_t>("owner_oid");
    const auto version = row.get<std::int64_t>("version");
    const auto sheet_edits = row.get<std::int64_t>("edits");
    const auto it = object_edits.find(oid);
    const std::int64_t obj = it == object_edits.end() ? -1 : it->second;
    if (obj != sheet_edits || version != sheet_edits + 1) {
      sheets_ok = false;
      detail += "; oid " + std::to_string(oid) + ": version " + std::to_string(version) +
                ", sheet edits " + std::to_string(sheet_edits) + ", object edits " +
                std::to_string(obj);
    }
    edits += sheet_edits;
  }
  line(sheets_ok, "sheet versions = committed edits: " + std::to_string(rows.size()) +
                      " profiles, " + std::to_string(edits) + " edits" + detail);

  bool sessions_ok = true;
  std::int64_t updates = 0;
  detail.clear();
  std::vector<std::optional<std::string>> values(counted.size());
  when_reachable(sessions_->store().describe(), waits, [&] {
    for (std::size_t i = 0; i < counted.size(); ++i) {
      values[i] = sessions_->store().get(counted[i].first, "updates");
    }
  });
  said();
  for (std::size_t i = 0; i < counted.size(); ++i) {
    const auto& [sid, n] = counted[i];
    const auto& v = values[i];
    const std::int64_t stored = v ? std::stoll(*v) : 0;
    if (stored != n || in_sessions_db[i] != n) {
      sessions_ok = false;
      detail += "; session " + sid.substr(0, 8) + ": value " + std::to_string(stored) +
                ", sessions database " + std::to_string(in_sessions_db[i]) + ", committed " +
                std::to_string(n);
    }
    updates += n;
  }
  line(sessions_ok,
       "session values = sessions database = committed updates: " + std::to_string(counted.size()) +
           " sessions, " + std::to_string(updates) + " updates" + detail);

  // No object of main refers into sessions: every current record of main, decoded.
  std::int64_t objects = 0;
  std::int64_t into_sessions = 0;
  db_->storage().for_each_object([&](os::Oid, os::Tid, std::string_view data) {
    ++objects;
    os::for_each_reference(data, [&](std::string_view database, os::Oid) {
      if (database == "sessions") ++into_sessions;
    });
    return true;
  });
  line(into_sessions == 0, "no reference from main into sessions: " + std::to_string(objects) +
                               " objects of main read, " + std::to_string(into_sessions) +
                               " such references");

  // The seat belt: a reference main -> sessions is refused at commit, and nothing is written.
  std::string refusal;
  try {
    auto& tm = w.manager();
    tm.begin();
    auto pin = std::make_shared<Pin>();
    pin->pin(w.sessions_db().root()->get<SessionState>(session_key(session_ids_.front())));
    w.objects().root()->set("seat-belt-test", pin);
    tm.commit();
  } catch (const xact::InvalidObjectReference& e) {
    refusal = e.what();
  }
  w.manager().abort();
  bool written = false;
  xact::run(w.manager(),
            [&](xact::Transaction&) { written = w.objects().root()->contains("seat-belt-test"); });
  line(!refusal.empty() && !written,
       "seat belt: a reference main -> sessions is refused at commit (" +
           (refusal.empty() ? std::string("it was NOT refused")
                            : refusal.substr(0, refusal.find(';'))) +
           ")" + (written ? ", but it was written" : ""));

  // Nothing of this process's transactions is left unfinished: the re-driver owes nothing, no
  // branch of this node is prepared in the SQL store, no session value is fenced by one.
  std::vector<xact::Xid> prepared;
  std::vector<xact::Xid> fenced;
  when_reachable("the servers (prepared branches, fenced values)", waits, [&] {
    prepared = sql_->recover(log_->node_id());
    fenced = sessions_->recover(log_->node_id());
  });
  said();
  const std::vector<xact::Redriver::Owed> owed = redriver.owed();
  detail.clear();
  for (const auto& o : owed) {
    detail += "; owed to " + o.resource + " (" + (o.commit ? "commit" : "rollback") + ", " +
              std::to_string(o.attempts) + " attempts): " + o.last_error;
  }
  for (const auto& x : prepared) detail += "; prepared " + x.to_gid();
  for (const auto& x : fenced) detail += "; fenced by " + x.gtrid.to_hex();
  line(owed.empty() && prepared.empty() && fenced.empty(),
       "nothing left unfinished: the re-driver owes " + std::to_string(owed.size()) + ", " +
           std::to_string(prepared.size()) + " branches prepared in " + sql_->resource_name() +
           ", " + std::to_string(fenced.size()) + " transactions with fenced session values" +
           detail);
  return r;
}

}  // namespace demo
