// The re-driver (see <xact/redriver.hpp>): one worker thread per resource that is owed a
// branch, started by the hand-off that makes it owed and ended when it owes nothing, so that a
// resource whose calls hang holds up only its own branches.
#include <xact/redriver.hpp>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <xact/decision_log.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>

namespace xact {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct Redriver::State {
  struct Item {
    Gtrid gtrid;
    bool commit = true;
    std::shared_ptr<ResourceManager> rm;
    RecoverableResource* rec = nullptr;
    std::string resource;
    Xid xid;
    std::uint64_t attempts = 0;
    std::string last_error;
  };
  struct Txn {
    std::size_t remaining = 0;
    bool commit = true;
    bool keep_record = false;  // a heuristic could not be recorded: recovery must see it again
    std::shared_ptr<ResourceManager> decision_store;
  };
  // Back-off is per resource: a server that is down is asked about one branch per wait. An
  // entry exists while the resource's worker runs.
  struct Resource {
    std::chrono::milliseconds backoff{0};
    Clock::time_point next_at{};
    bool unreachable = false;
  };
  // One call's result, applied under the mutex.
  struct Result {
    std::uint64_t id;
    bool answered;
    RecoverableResource::Outcome outcome;
    std::string error;
  };

  std::mutex mu;
  std::condition_variable work_cv;  // new work, or stop
  mutable std::condition_variable idle_cv;
  std::condition_variable exited_cv;                     // a worker ended
  RedriverOptions options;                               // guarded by mu
  std::map<std::uint64_t, Item> items;                   // guarded by mu; by hand-off order
  std::map<Gtrid, Txn> txns;                             // guarded by mu
  std::map<const ResourceManager*, Resource> resources;  // guarded by mu
  std::uint64_t next_id = 1;
  Stats stats;
  std::size_t workers = 0;  // guarded by mu: worker threads running
  bool stop = false;
  std::minstd_rand rng{std::random_device{}()};

  // The decision log, used outside `mu` for its own I/O; nulled (under log_mu) at shutdown so a
  // thread that outlived the grace never touches a log that is gone.
  std::mutex log_mu;
  DecisionLog* decision_log = nullptr;
  // Transactions whose done record or marker deletion is being written (outside `mu`): still
  // owed work for wait_idle().
  std::size_t finishing = 0;  // guarded by mu
  bool idle() const { return items.empty() && finishing == 0; }

  void work(const ResourceManager* rm);
  Clock::duration jittered(std::chrono::milliseconds backoff);
  void apply(const std::vector<Result>& results, const ResourceManager* rm);
  void finish_txn(const Gtrid& gtrid, std::vector<std::pair<Gtrid, Txn>>& ended);
  void after_txns(const std::vector<std::pair<Gtrid, Txn>>& ended) noexcept;
  void record_heuristic(const Item& item, RecoverableResource::Outcome outcome, bool* recorded);
};

Clock::duration Redriver::State::jittered(std::chrono::milliseconds backoff) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(backoff).count();
  std::uniform_int_distribution<std::int64_t> dist(us / 2, std::max<std::int64_t>(us, 1));
  return std::chrono::microseconds(dist(rng));
}

void Redriver::State::record_heuristic(const Item& item, RecoverableResource::Outcome outcome,
                                       bool* recorded) {
  HeuristicRecord h;
  h.gtrid = item.gtrid;
  h.resource = item.resource;
  h.bqual = item.xid.bqual;
  h.outcome = std::string(to_string(outcome));
  h.detail = std::string("the coordinator decided to ") + (item.commit ? "commit" : "roll back") +
             ", the resource reports " + h.outcome;
  h.time_us = now_us();
  ++stats.heuristics;
  detail::count(detail::Counter::heuristics);
  log(LogLevel::error, "heuristic outcome on resource '" + item.resource + "' for " +
                           item.xid.to_gid() + ": " + h.detail);
  *recorded = false;
  std::lock_guard guard(log_mu);
  if (decision_log == nullptr) return;
  try {
    decision_log->log_heuristic(h);
    *recorded = true;
  } catch (...) {
    log(LogLevel::error, "could not record the heuristic outcome (" +
                             error_message(std::current_exception()) +
                             "); recovery finds it again after a restart");
  }
}

void Redriver::State::apply(const std::vector<Result>& results, const ResourceManager* rm) {
  const auto now = Clock::now();
  Resource& r = resources[rm];
  std::vector<std::pair<Gtrid, Txn>> ended;
  for (const Result& res : results) {
    auto it = items.find(res.id);
    if (it == items.end()) continue;
    Item& item = it->second;
    ++item.attempts;
    ++stats.attempts;
    if (!res.answered) {
      ++stats.failures;
      detail::count(detail::Counter::redrive_failures);
      item.last_error = res.error;
      if (!r.unreachable) {
        std::size_t owed_here = 0;
        for (const auto& [id, i] : items) owed_here += i.rm.get() == rm ? 1 : 0;
        log(LogLevel::warning, "re-driver: resource '" + item.resource +
                                   "' cannot finish a branch now (" + res.error + "); " +
                                   std::to_string(owed_here) +
                                   " branch(es) owed to it are retried with back-off");
      }
      r.unreachable = true;
      r.next_at = now + jittered(r.backoff);
      r.backoff =
          std::min(options.max_backoff, std::max<std::chrono::milliseconds>(r.backoff * 2, 1ms));
      continue;
    }
    if (r.unreachable) {
      log(LogLevel::info, "re-driver: resource '" + item.resource +
                              "' finishes branches again; finishing what it owes");
      r.unreachable = false;
    }
    r.backoff = options.initial_backoff;
    r.next_at = now;
    const std::string what = item.commit ? "commit" : "rollback";
    using O = RecoverableResource::Outcome;
    if (res.outcome == O::done) {
      log(LogLevel::info, "re-driver: finished the " + what + " of " + item.xid.to_gid() +
                              " on resource '" + item.resource + "' (attempt " +
                              std::to_string(item.attempts) + ")");
    } else if (res.outcome == O::unknown_id) {
      // For a rollback this is common (the prepare never happened); for a commit the branch
      // is no longer prepared although this process could not finish it.
      log(item.commit ? LogLevel::warning : LogLevel::info,
          "re-driver: resource '" + item.resource + "' holds no prepared " + item.xid.to_gid() +
              " any more; counted as done (" +
              (item.commit ? "an earlier attempt committed it before its connection broke, or "
                             "an administrator finished it"
                           : "it was never prepared, or is already rolled back") +
              ")");
    } else {
      bool recorded = false;
      record_heuristic(item, res.outcome, &recorded);
      if (!recorded) txns[item.gtrid].keep_record = true;
    }
    ++stats.finished;
    detail::count(detail::Counter::completions_redriven);
    const Gtrid gtrid = item.gtrid;
    items.erase(it);
    finish_txn(gtrid, ended);
  }
  stats.owed = items.size();
  if (!ended.empty()) {
    // The log's I/O and the last resource's marker deletion run without `mu`: hand-offs from
    // committing transactions must not wait for them.
    ++finishing;
    mu.unlock();
    after_txns(ended);
    mu.lock();
    --finishing;
    for (const auto& [gtrid, txn] : ended) {
      if (auto t = txns.find(gtrid); t != txns.end() && t->second.remaining == 0) txns.erase(t);
    }
  }
  if (idle()) idle_cv.notify_all();
}

void Redriver::State::finish_txn(const Gtrid& gtrid, std::vector<std::pair<Gtrid, Txn>>& ended) {
  auto t = txns.find(gtrid);
  if (t == txns.end()) return;
  if (--t->second.remaining > 0) return;
  // Stays in `txns` (owned: recovery keeps away) until its done record is written.
  ended.emplace_back(gtrid, t->second);
}

void Redriver::State::after_txns(const std::vector<std::pair<Gtrid, Txn>>& ended) noexcept {
  for (const auto& [gtrid, txn] : ended) {
    if (!txn.commit || txn.keep_record) continue;
    {
      std::lock_guard guard(log_mu);
      if (decision_log != nullptr) decision_log->log_done(gtrid);  // never throws for I/O
    }
    if (txn.decision_store) {
      if (auto* store = txn.decision_store->decision_store()) store->forget_decision(gtrid);
    }
  }
}

void Redriver::State::work(const ResourceManager* rm) {
  std::unique_lock lock(mu);
  while (!stop) {
    struct Call {
      std::uint64_t id;
      bool commit;
      RecoverableResource* rec;
      std::shared_ptr<ResourceManager> rm;  // alive during the call
      Xid xid;
    };
    std::vector<Call> calls;
    for (const auto& [id, item] : items) {
      if (item.rm.get() == rm) calls.push_back({id, item.commit, item.rec, item.rm, item.xid});
    }
    if (calls.empty()) {
      resources.erase(rm);  // owes nothing: the next hand-off to it starts a new worker
      break;
    }
    if (const auto at = resources[rm].next_at; at > Clock::now()) {
      calls.clear();
      work_cv.wait_until(lock, at);
      continue;
    }
    lock.unlock();
    std::vector<Result> results;
    for (const Call& c : calls) {
      try {
        const auto outcome =
            c.commit ? c.rec->commit_prepared(c.xid) : c.rec->rollback_prepared(c.xid);
        results.push_back({c.id, true, outcome, {}});
      } catch (...) {
        results.push_back({c.id, false, RecoverableResource::Outcome::done,
                           error_message(std::current_exception())});
        break;  // the rest of this resource's branches wait out the back-off with it
      }
      std::lock_guard guard(mu);
      if (stop) break;
    }
    calls.clear();
    lock.lock();
    apply(results, rm);
  }
  --workers;
  exited_cv.notify_all();
  idle_cv.notify_all();
}

// ---------------------------------------------------------------------------------------------

Redriver::Redriver(DecisionLog* log, RedriverOptions options) : state_(std::make_shared<State>()) {
  state_->decision_log = log;
  state_->options = options;
}

Redriver::~Redriver() {
  State& s = *state_;
  std::vector<std::string> abandoned;
  std::thread thread;
  {
    std::unique_lock lock(s.mu);
    s.stop = true;
    s.work_cv.notify_all();
    if (!s.exited_cv.wait_for(lock, s.options.shutdown_grace, [&] { return s.workers == 0; })) {
      log(LogLevel::warning,
          "re-driver: a resource call did not return within the shutdown grace of " +
              std::to_string(s.options.shutdown_grace.count()) +
              " ms; its thread is left to end on its own");
    }
    for (const auto& [id, item] : s.items) {
      abandoned.push_back((item.commit ? "commit of " : "rollback of ") + item.xid.to_gid() +
                          " on '" + item.resource + "'");
    }
    s.stats.abandoned += abandoned.size();
    if (s.workers == 0) {
      // The resource managers are released here, not by a thread that may outlive main.
      s.items.clear();
      s.txns.clear();
    }
  }
  {
    std::lock_guard guard(s.log_mu);
    if (!abandoned.empty()) {
      std::string message = "re-driver: stopping with " + std::to_string(abandoned.size()) +
                            " branch(es) still owed (";
      for (std::size_t i = 0; i < abandoned.size() && i < 5; ++i) {
        message += (i ? "; " : "") + abandoned[i];
      }
      if (abandoned.size() > 5) message += "; ...";
      message += s.decision_log != nullptr
                     ? "): they stay prepared, holding their locks, until start-up recovery "
                       "finishes them"
                     : "): no decision log records them, so they stay prepared until an "
                       "administrator finishes them";
      log(LogLevel::warning, message);
    }
    s.decision_log = nullptr;
  }
}

Redriver& Redriver::process() {
  static Redriver instance(nullptr);
  return instance;
}

void Redriver::hand_off(const Gtrid& gtrid, bool commit, std::vector<Branch> branches,
                        std::shared_ptr<ResourceManager> decision_store) noexcept {
  State& s = *state_;
  std::unique_lock lock(s.mu, std::defer_lock);
  try {
    lock.lock();
    if (s.stop) {
      log(LogLevel::error,
          "re-driver: shutting down; the branches of " + gtrid.to_hex() + " are left to recovery");
      return;
    }
    std::vector<State::Item> taken;
    for (auto& b : branches) {
      RecoverableResource* rec = b.rm ? b.rm->recoverable() : nullptr;
      if (rec == nullptr) {
        if (commit) {
          log(LogLevel::error, "re-driver: resource '" + b.xid.bqual +
                                   "' cannot finish a branch by id (it is " +
                                   "not a RecoverableResource), so " + b.xid.to_gid() +
                                   " stays as its failed tpc_finish left it");
        }
        continue;
      }
      State::Item& item = taken.emplace_back();
      item.gtrid = gtrid;
      item.commit = commit;
      item.rec = rec;
      item.resource = b.rm->resource_name();
      item.xid = std::move(b.xid);
      item.last_error = std::move(b.error);
      item.rm = std::move(b.rm);
    }
    if (taken.empty()) return;
    // A worker for each resource that owes nothing yet. They wait for `mu` until the branches
    // are in; if one cannot start, nothing is taken over (a started one finds nothing and ends).
    std::vector<const ResourceManager*> fresh;
    for (const State::Item& item : taken) {
      const ResourceManager* rm = item.rm.get();
      if (!s.resources.contains(rm) && std::find(fresh.begin(), fresh.end(), rm) == fresh.end()) {
        fresh.push_back(rm);
      }
    }
    for (const ResourceManager* rm : fresh) {
      std::thread([state = state_, rm] { state->work(rm); }).detach();
      ++s.workers;
    }
    for (const ResourceManager* rm : fresh) s.resources[rm].backoff = s.options.initial_backoff;
    for (State::Item& item : taken) {
      log(LogLevel::info,
          "re-driver: took over the " + std::string(commit ? "commit" : "rollback") + " of " +
              item.xid.to_gid() + " on resource '" + item.resource + "' (" + item.last_error + ")");
      s.items.emplace(s.next_id++, std::move(item));
    }
    auto& txn = s.txns[gtrid];
    txn.remaining += taken.size();
    txn.commit = commit;
    if (decision_store) txn.decision_store = std::move(decision_store);
    s.stats.handed_off += taken.size();
    s.stats.owed = s.items.size();
    s.work_cv.notify_all();
  } catch (...) {
    log(LogLevel::error, "re-driver: could not take over the branches of " + gtrid.to_hex() + " (" +
                             error_message(std::current_exception()) +
                             "); recovery finishes them after a restart");
  }
}

bool Redriver::wait_idle(std::chrono::steady_clock::time_point deadline) const {
  State& s = *state_;
  std::unique_lock lock(s.mu);
  return s.idle_cv.wait_until(lock, deadline, [&] { return s.idle(); });
}

bool Redriver::owns(const Gtrid& gtrid) const {
  std::lock_guard lock(state_->mu);
  return state_->txns.contains(gtrid);
}

std::vector<Redriver::Owed> Redriver::owed() const {
  std::lock_guard lock(state_->mu);
  std::vector<Owed> out;
  for (const auto& [id, item] : state_->items) {
    out.push_back({item.resource, item.xid, item.commit, item.attempts, item.last_error});
  }
  return out;
}

Redriver::Stats Redriver::stats() const {
  std::lock_guard lock(state_->mu);
  return state_->stats;
}

void Redriver::set_options(RedriverOptions options) {
  std::lock_guard lock(state_->mu);
  state_->options = options;
}

RedriverOptions Redriver::options() const {
  std::lock_guard lock(state_->mu);
  return state_->options;
}

}  // namespace xact
