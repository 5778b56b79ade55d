// A tiny in-memory "SQL database" and an SqlResource over it, so that xact::sql's pool and
// protocol logic are tested without a server (label `unit`).
//
// Statements (the fake's whole language):
//   "put"  $1 key, $2 value (NULL erases)    "get"  $1 key -> one row (v) or none
//   "fail"  a statement the database refuses (SqlError 22012); aborts the transaction
//   "native <kind>"  throws FakeNative{kind}: a driver exception only map_error() knows
// Every statement and protocol step is appended to FakeDb::log ("BEGIN", "PREPARE <gid>",
// "COMMIT PREPARED <gid>", "exec put", ...), so tests can check exactly what ran.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <xact/errors.hpp>
#include <xact/sql/sql_resource.hpp>

namespace xact::sql::fake {

/// A driver's own exception, as a real driver would throw it.
struct FakeNative : std::runtime_error {
  explicit FakeNative(const std::string& kind) : std::runtime_error(kind), kind(kind) {}
  std::string kind;  // "deadlock", "lock_timeout", "lost", "syntax"
};

using Writes = std::map<std::string, std::optional<std::string>>;

class FakeDb {
 public:
  std::map<std::string, std::string> data() const {
    std::lock_guard lock(mu_);
    return data_;
  }
  std::optional<std::string> get(const std::string& key) const {
    std::lock_guard lock(mu_);
    auto it = data_.find(key);
    return it == data_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  std::vector<std::string> log() const {
    std::lock_guard lock(mu_);
    return log_;
  }
  void clear_log() {
    std::lock_guard lock(mu_);
    log_.clear();
  }
  std::set<std::string> prepared_gids() const {
    std::lock_guard lock(mu_);
    std::set<std::string> out;
    for (const auto& [gid, w] : prepared_) out.insert(gid);
    return out;
  }
  int connections_made() const {
    std::lock_guard lock(mu_);
    return connections_made_;
  }
  /// Every open connection dies (a server restart); new ones work.
  void kill_connections() {
    std::lock_guard lock(mu_);
    ++generation_;
  }
  /// While down, connecting fails with ConnectionLost, and so does every statement.
  void set_down(bool down) {
    std::lock_guard lock(mu_);
    down_ = down;
    if (down) ++generation_;
  }
  /// The next `step` ("execute", "prepare", "commit", "commit_prepared", "rollback",
  /// "rollback_prepared", "begin", "savepoint") throws `error` instead.
  void fail_next(const std::string& step, std::exception_ptr error) {
    std::lock_guard lock(mu_);
    fail_[step] = std::move(error);
  }
  /// Answer of branch_wrote() (the dialect's read-only detection).
  bool branch_wrote = true;

  // --- used by FakeConnection / FakeResource ---
  void add(std::string entry) {
    std::lock_guard lock(mu_);
    log_.push_back(std::move(entry));
  }
  void maybe_fail(const std::string& step) {
    std::exception_ptr e;
    {
      std::lock_guard lock(mu_);
      auto it = fail_.find(step);
      if (it == fail_.end()) return;
      e = it->second;
      fail_.erase(it);
    }
    std::rethrow_exception(e);
  }
  int connect() {
    std::lock_guard lock(mu_);
    if (down_) throw ConnectionLost("fake: cannot connect: the server is down");
    ++connections_made_;
    return generation_;
  }
  bool alive(int generation) const {
    std::lock_guard lock(mu_);
    return !down_ && generation == generation_;
  }
  void apply(const Writes& writes) {
    std::lock_guard lock(mu_);
    for (const auto& [k, v] : writes) {
      if (v) {
        data_[k] = *v;
      } else {
        data_.erase(k);
      }
    }
  }
  void prepare(const std::string& gid, Writes writes) {
    std::lock_guard lock(mu_);
    prepared_[gid] = std::move(writes);
  }
  std::optional<Writes> take_prepared(const std::string& gid) {
    std::lock_guard lock(mu_);
    auto it = prepared_.find(gid);
    if (it == prepared_.end()) return std::nullopt;
    Writes w = std::move(it->second);
    prepared_.erase(it);
    return w;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> data_;
  std::map<std::string, Writes> prepared_;
  std::vector<std::string> log_;
  std::map<std::string, std::exception_ptr> fail_;
  int connections_made_ = 0;
  int generation_ = 0;
  bool down_ = false;
};

class FakeConnection final : public Connection {
 public:
  explicit FakeConnection(std::shared_ptr<FakeDb> db) : db_(std::move(db)) {
    generation_ = db_->connect();
  }

  Result execute(std::string_view sql, const Params& params = {}) override {
    check_connected("statement");
    db_->add("exec " + std::string(sql));
    db_->maybe_fail("execute");
    const std::string s(sql);
    if (in_txn_ && aborted_) {
      throw SqlError("fake: current transaction is aborted (25P02)", "25P02");
    }
    if (s == "put") {
      (in_txn_ ? writes_ : autocommit_)[params[0].as_string()] =
          params[1].is_null() ? std::nullopt : std::optional<std::string>(params[1].as_string());
      if (!in_txn_) db_->apply(std::exchange(autocommit_, {}));
      return Result({}, 1);
    }
    if (s == "get") {
      const std::string key = params[0].as_string();
      Result r({"v"}, 0);
      std::optional<std::string> v = db_->get(key);
      if (auto it = writes_.find(key); in_txn_ && it != writes_.end()) v = it->second;
      if (v) r.add_row({Value(*v)});
      return r;
    }
    if (s == "fail") {
      if (in_txn_) aborted_ = true;
      throw SqlError("fake: division by zero (22012)", "22012");
    }
    if (s.rfind("native ", 0) == 0) {
      if (in_txn_) aborted_ = true;
      throw FakeNative(s.substr(7));
    }
    throw SqlError("fake: unknown statement '" + s + "'", "42601");
  }
  bool looks_alive() noexcept override {
    if (broken_) return false;
    if (!db_->alive(generation_)) broken_ = true;
    return !broken_;
  }
  bool ping() noexcept override {
    ++pings;
    return looks_alive();
  }
  bool broken() const noexcept override { return broken_; }
  std::string_view dialect() const noexcept override { return "fake"; }

  // --- the dialect's steps (FakeResource) ---
  void check_connected(const std::string& what) {
    if (!broken_ && !db_->alive(generation_)) broken_ = true;
    if (broken_) throw ConnectionLost("fake: connection lost (" + what + ")");
  }
  void begin() {
    check_connected("begin");
    db_->add("BEGIN");
    db_->maybe_fail("begin");
    in_txn_ = true;
    aborted_ = false;
    writes_.clear();
    savepoints_.clear();
  }
  void prepare(const std::string& gid) {
    check_connected("prepare");
    db_->add("PREPARE " + gid);
    db_->maybe_fail("prepare");
    if (aborted_) {
      end();
      throw ResourceError("fake: the transaction was aborted; not prepared");
    }
    db_->prepare(gid, writes_);
    end();
  }
  void commit() {
    if (!broken_ && !db_->alive(generation_)) broken_ = true;
    if (broken_) throw InDoubtError("fake: connection lost during COMMIT");
    db_->add("COMMIT");
    db_->maybe_fail("commit");
    if (aborted_) throw SqlError("fake: current transaction is aborted (25P02)", "25P02");
    db_->apply(writes_);
    end();
  }
  void rollback() {
    check_connected("rollback");
    db_->add("ROLLBACK");
    db_->maybe_fail("rollback");
    end();
  }
  void savepoint(const std::string& name) {
    check_connected("savepoint");
    db_->add("SAVEPOINT " + name);
    db_->maybe_fail("savepoint");
    if (aborted_) throw SqlError("fake: current transaction is aborted (25P02)", "25P02");
    savepoints_[name] = writes_;
  }
  void rollback_to(const std::string& name) {
    check_connected("rollback to savepoint");
    db_->add("ROLLBACK TO " + name);
    writes_ = savepoints_.at(name);
    aborted_ = false;
  }
  void finish_prepared(const std::string& gid, bool commit) {
    check_connected("finish prepared");
    db_->add(std::string(commit ? "COMMIT PREPARED " : "ROLLBACK PREPARED ") + gid);
    db_->maybe_fail(commit ? "commit_prepared" : "rollback_prepared");
    auto writes = db_->take_prepared(gid);
    if (!writes) throw UnknownIdError("fake: no prepared transaction " + gid);
    if (commit) db_->apply(*writes);
  }
  std::vector<Xid> prepared() {
    check_connected("recover");
    std::vector<Xid> out;
    for (const auto& gid : db_->prepared_gids()) {
      if (auto xid = Xid::from_gid(gid)) out.push_back(*xid);
    }
    return out;
  }

  int pings = 0;

 private:
  void end() {
    in_txn_ = false;
    aborted_ = false;
    writes_.clear();
    savepoints_.clear();
  }

  std::shared_ptr<FakeDb> db_;
  int generation_ = 0;
  bool broken_ = false;
  bool in_txn_ = false;
  bool aborted_ = false;
  Writes writes_;
  Writes autocommit_;
  std::map<std::string, Writes> savepoints_;
};

class FakeResource final : public SqlResource {
 public:
  static std::shared_ptr<FakeResource> create(std::string name, std::shared_ptr<FakeDb> db,
                                              PoolOptions options = {}) {
    auto pool = ConnectionPool::create(
        [db]() -> std::unique_ptr<Connection> { return std::make_unique<FakeConnection>(db); },
        std::move(options));
    return std::shared_ptr<FakeResource>(new FakeResource(std::move(name), db, std::move(pool)));
  }
  void enlist(Transaction& txn, std::shared_ptr<FakeConnection> c) {
    enlist_connection(txn, std::move(c));
  }
  const std::shared_ptr<FakeDb>& db() const { return db_; }

 protected:
  void begin_branch(Connection& c, const Xid&) override { fc(c).begin(); }
  bool branch_wrote(Connection&) override { return db_->branch_wrote; }
  void prepare_branch(Connection& c, const Xid& xid) override { fc(c).prepare(xid.to_gid()); }
  void commit_branch(Connection& c, const Xid&) override { fc(c).commit(); }
  void rollback_branch(Connection& c, const Xid&) override { fc(c).rollback(); }
  void commit_prepared_branch(Connection& c, const Xid& xid) override {
    fc(c).finish_prepared(xid.to_gid(), true);
  }
  void rollback_prepared_branch(Connection& c, const Xid& xid) override {
    fc(c).finish_prepared(xid.to_gid(), false);
  }
  std::vector<Xid> prepared_branches(Connection& c) override { return fc(c).prepared(); }
  void set_savepoint(Connection& c, const std::string& name) override { fc(c).savepoint(name); }
  void rollback_to_savepoint(Connection& c, const std::string& name) override {
    fc(c).rollback_to(name);
  }
  // Names of its own, so that tests see messages take the dialect's words.
  std::string_view commit_prepared_statement() const noexcept override { return "FAKE COMMIT"; }
  std::string_view rollback_prepared_statement() const noexcept override { return "FAKE ROLLBACK"; }
  std::exception_ptr map_error(const std::exception_ptr& error, Phase) const noexcept override {
    try {
      std::rethrow_exception(error);
    } catch (const FakeNative& e) {
      if (e.kind == "deadlock") return std::make_exception_ptr(DeadlockError("fake deadlock"));
      if (e.kind == "lock_timeout") {
        return std::make_exception_ptr(LockTimeoutError("fake lock timeout"));
      }
      if (e.kind == "lost") return std::make_exception_ptr(ConnectionLost("fake lost"));
      return std::make_exception_ptr(SqlError("fake: " + e.kind, "42601"));
    } catch (...) {
      return error;
    }
  }

 private:
  FakeResource(std::string name, std::shared_ptr<FakeDb> db, std::shared_ptr<ConnectionPool> pool)
      : SqlResource(std::move(name), std::move(pool)), db_(std::move(db)) {}
  static FakeConnection& fc(Connection& c) { return static_cast<FakeConnection&>(c); }
  std::shared_ptr<FakeDb> db_;
};

}  // namespace xact::sql::fake
