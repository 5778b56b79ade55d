#include <xact/recovery.hpp>

#include <algorithm>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>

namespace xact {

namespace {

// The tolerated log damage that may have cost the commit record of `gtrid`, if any.
const LogDamage* damage_covering(const std::vector<LogDamage>& damage, const Gtrid& gtrid) {
  for (const auto& d : damage) {
    if (gtrid.epoch() <= d.up_to_epoch) return &d;
  }
  return nullptr;
}

}  // namespace

std::string_view to_string(RecoverableResource::Outcome o) noexcept {
  using O = RecoverableResource::Outcome;
  switch (o) {
    case O::done: return "done";
    case O::unknown_id: return "unknown id";
    case O::heuristic_commit: return "heuristic commit";
    case O::heuristic_rollback: return "heuristic rollback";
    case O::heuristic_mixed: return "heuristic mixed";
  }
  return "?";
}

std::vector<Xid> RecoverableResource::recover_all_nodes() {
  throw UsageError("this resource cannot list the prepared ids of other nodes");
}

std::string_view to_string(RecoveryAction::Kind kind) {
  switch (kind) {
    case RecoveryAction::Kind::commit: return "commit";
    case RecoveryAction::Kind::rollback: return "rollback";
    case RecoveryAction::Kind::already_finished: return "already finished";
    case RecoveryAction::Kind::heuristic: return "heuristic";
    case RecoveryAction::Kind::done_record: return "done record";
  }
  return "?";
}

std::string RecoveryReport::describe() const {
  std::string s = dry_run ? "recovery (dry run): " : "recovery: ";
  if (actions.empty() && owed.empty()) return s + "nothing to do";
  s += std::to_string(actions.size()) + (dry_run ? " action(s) would be taken" : " action(s)");
  s += ", " + std::to_string(owed.size()) + " owed";
  for (const auto& a : actions) {
    s += "\n  " + std::string(to_string(a.kind)) + " " + a.resource;
    if (!a.xid.gtrid.empty()) s += " " + a.xid.to_gid();
    if (!a.detail.empty()) s += ": " + a.detail;
  }
  for (const auto& o : owed) {
    s += "\n  owed " + o.resource;
    if (!o.xid.gtrid.empty()) s += " " + o.xid.to_gid();
    s += ": " + o.reason;
  }
  return s;
}

Recovery::Recovery(std::shared_ptr<DecisionLog> log) : log_(std::move(log)) {
  if (!log_) throw UsageError("Recovery needs a decision log");
}

Recovery::~Recovery() { stop_background(); }

RecoveryTarget RecoveryTarget::of(const std::shared_ptr<ResourceManager>& rm) {
  if (!rm) throw UsageError("RecoveryTarget::of: null resource manager");
  RecoveryTarget t;
  t.name = rm->resource_name();
  // Aliasing: the capability pointers keep the whole resource manager alive.
  if (auto* r = rm->recoverable()) t.recoverable = std::shared_ptr<RecoverableResource>(rm, r);
  if (auto* d = rm->decision_store()) t.decision_store = std::shared_ptr<DecisionStore>(rm, d);
  return t;
}

void Recovery::register_resource(RecoveryTarget target) {
  check_branch_name(target.name);
  if (!target.recoverable && !target.decision_store) {
    throw UsageError("resource '" + target.name +
                     "' offers neither RecoverableResource nor DecisionStore: recovery has "
                     "nothing to ask it");
  }
  std::lock_guard lock(mutex_);
  const std::string name = target.name;
  resources_[name] = Registered{std::move(target), false};
}

void Recovery::register_resource(const std::shared_ptr<ResourceManager>& rm) {
  register_resource(RecoveryTarget::of(rm));
}

void Recovery::note_reachability(Registered& r, bool reachable, const std::string& error) {
  const std::string& name = r.target.name;
  if (!reachable && !r.unreachable) {
    log(LogLevel::warning, "recovery: resource '" + name + "' is unreachable (" + error +
                               "); its work is owed and retried later");
  } else if (reachable && r.unreachable) {
    log(LogLevel::info, "recovery: resource '" + name + "' is reachable again");
  }
  r.unreachable = !reachable;
}

void Recovery::record_heuristic(RecoveryReport& report, const std::string& resource, const Xid& xid,
                                RecoverableResource::Outcome outcome, bool expected_commit,
                                bool dry_run) {
  HeuristicRecord h;
  h.gtrid = xid.gtrid;
  h.resource = resource;
  h.bqual = xid.bqual;
  h.outcome = std::string(to_string(outcome));
  h.detail = std::string("the log says ") + (expected_commit ? "commit" : "roll back") +
             ", the resource reports " + h.outcome;
  report.actions.push_back({RecoveryAction::Kind::heuristic, resource, xid, h.detail});
  detail::count(detail::Counter::heuristics);
  log(LogLevel::error, "heuristic outcome on resource '" + resource + "' for " + xid.to_gid() +
                           ": " + h.detail + "; recorded until an operator forgets it");
  if (!dry_run) log_->log_heuristic(h);
}

void Recovery::redrive_unfinished(RecoveryReport& report, bool dry_run) {
  for (const CommitRecord& record : log_->unfinished()) {
    if (log_->in_flight(record.gtrid)) continue;  // its own commit is still finishing it
    bool all_done = true;
    for (const auto& p : record.participants) {
      Xid xid;
      xid.gtrid = record.gtrid;
      xid.bqual = p.bqual;
      Registered* reg = nullptr;
      {
        std::lock_guard lock(mutex_);
        auto it = resources_.find(p.resource);
        if (it != resources_.end()) reg = &it->second;
      }
      if (reg == nullptr || !reg->target.recoverable) {
        report.owed.push_back({p.resource, xid,
                               "committed, but no recoverable resource of that name is "
                               "registered: register it to finish the commit"});
        all_done = false;
        continue;
      }
      if (dry_run) {
        report.actions.push_back({RecoveryAction::Kind::commit, p.resource, xid,
                                  "re-drive the commit (commit record in the log)"});
        continue;
      }
      try {
        const auto outcome = reg->target.recoverable->commit_prepared(xid);
        note_reachability(*reg, true, {});
        if (outcome == RecoverableResource::Outcome::done) {
          report.actions.push_back(
              {RecoveryAction::Kind::commit, p.resource, xid, "re-driven from the commit record"});
        } else if (outcome == RecoverableResource::Outcome::unknown_id) {
          // The normal case: the branch committed before the process stopped, and only the
          // done record (never forced) was lost with it.
          report.actions.push_back({RecoveryAction::Kind::already_finished, p.resource, xid,
                                    "already committed (normal: the done record is written "
                                    "lazily, so a stop after the last finish leaves the commit "
                                    "record behind); counted as done"});
        } else {
          record_heuristic(report, p.resource, xid, outcome, /*expected_commit=*/true, dry_run);
        }
      } catch (...) {
        const std::string error = error_message(std::current_exception());
        note_reachability(*reg, false, error);
        report.owed.push_back({p.resource, xid, "commit re-drive failed: " + error});
        all_done = false;
      }
    }
    if (all_done && !dry_run) {
      log_->log_done(record.gtrid);
      Xid whole;
      whole.gtrid = record.gtrid;
      report.actions.push_back(
          {RecoveryAction::Kind::done_record, "", whole, "every branch finished"});
    }
  }
}

void Recovery::decide_prepared(RecoveryReport& report, bool dry_run) {
  std::vector<std::pair<std::string, Registered*>> regs;
  std::vector<DecisionStore*> stores;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, reg] : resources_) {
      regs.emplace_back(name, &reg);
      if (auto* s = reg.target.decision_store.get()) stores.push_back(s);
    }
  }
  const std::vector<LogDamage> damage = log_->damage();
  for (auto& [name, reg] : regs) {
    auto* rec = reg->target.recoverable.get();
    if (rec == nullptr) continue;
    if (!dry_run) {
      try {
        rec->end_orphaned_prepares(log_->node_id(),
                                   [this](const Gtrid& gtrid) { return log_->in_flight(gtrid); });
      } catch (...) {
        log(LogLevel::warning, "recovery: resource '" + name +
                                   "': a session left running a PREPARE could not be ended (" +
                                   error_message(std::current_exception()) +
                                   "); a branch it prepares after this run stays prepared until "
                                   "the next run");
      }
    }
    std::vector<Xid> prepared;
    try {
      prepared = rec->recover(log_->node_id());
      note_reachability(*reg, true, {});
    } catch (...) {
      const std::string error = error_message(std::current_exception());
      note_reachability(*reg, false, error);
      report.owed.push_back({name, Xid{}, "cannot list prepared ids: " + error});
      continue;
    }
    for (const Xid& xid : prepared) {
      if (xid.gtrid.node() != log_->node_id()) continue;  // never touch another node's ids
      if (log_->in_flight(xid.gtrid)) continue;
      bool commit = log_->is_committed(xid.gtrid);
      if (commit && dry_run) continue;  // listed by redrive_unfinished already
      std::string why = "commit record in the log";
      bool wait = false;
      if (!commit) {
        for (DecisionStore* store : stores) {
          auto lookup = DecisionStore::Lookup::unreadable;
          try {
            lookup = store->lookup_decision(xid.gtrid);
          } catch (...) {
            // Read as "cannot be read now": the branch waits; never presumed aborted.
            log(LogLevel::warning, "recovery: a decision store could not be asked about " +
                                       xid.gtrid.to_hex() + " (" +
                                       error_message(std::current_exception()) + ")");
          }
          if (lookup == DecisionStore::Lookup::committed) {
            commit = true;
            why = "the last resource holds the commit decision";
            break;
          }
          if (lookup == DecisionStore::Lookup::unreadable) wait = true;
        }
      }
      if (!commit && wait) {
        report.owed.push_back({name, xid,
                               "a last resource that may hold the decision cannot be read; "
                               "waiting (never presumed aborted)"});
        continue;
      }
      // A commit record lost to tolerated damage looks like no commit record: presume abort
      // (what else), but never silently.
      const LogDamage* lost = commit ? nullptr : damage_covering(damage, xid.gtrid);
      if (!commit) why = "no commit record: presumed abort";
      if (lost != nullptr) {
        why = "no commit record, but the decision log lost commit records of epochs up to " +
              std::to_string(lost->up_to_epoch) + " (" + lost->description +
              "): presumed abort, recorded as a heuristic outcome; check the transaction's "
              "other participants";
      }
      const auto kind = commit ? RecoveryAction::Kind::commit : RecoveryAction::Kind::rollback;
      if (dry_run) {
        report.actions.push_back({kind, name, xid, why});
        continue;
      }
      try {
        const auto outcome = commit ? rec->commit_prepared(xid) : rec->rollback_prepared(xid);
        if (outcome == RecoverableResource::Outcome::done && lost != nullptr) {
          HeuristicRecord h;
          h.gtrid = xid.gtrid;
          h.resource = name;
          h.bqual = xid.bqual;
          h.outcome = "presumed abort after log damage";
          h.detail = why;
          report.actions.push_back({RecoveryAction::Kind::heuristic, name, xid, why});
          detail::count(detail::Counter::heuristics);
          log(LogLevel::error,
              "recovery rolled back " + xid.to_gid() + " on resource '" + name + "': " + why);
          log_->log_heuristic(h);
        } else if (outcome == RecoverableResource::Outcome::done) {
          report.actions.push_back({kind, name, xid, why});
        } else if (outcome == RecoverableResource::Outcome::unknown_id) {
          report.actions.push_back({RecoveryAction::Kind::already_finished, name, xid,
                                    "listed as prepared, then gone: finished meanwhile by "
                                    "another recovery or by an administrator; counted as "
                                    "done"});
        } else {
          record_heuristic(report, name, xid, outcome, commit, dry_run);
        }
      } catch (...) {
        const std::string error = error_message(std::current_exception());
        note_reachability(*reg, false, error);
        report.owed.push_back(
            {name, xid, std::string(commit ? "commit" : "rollback") + " failed: " + error});
      }
    }
  }
}

RecoveryReport Recovery::run(bool dry_run) {
  std::lock_guard run_lock(run_mutex_);
  if (log_->stats().failed) {
    // A commit record whose write failed may still be on disk: this process's view of the log
    // is not to be trusted for presuming abort. Only a restart (start-up recovery reading the
    // log from disk) can decide those transactions.
    throw LogFailedError("recovery refuses to decide anything while the decision log in '" +
                         log_->dir() +
                         "' is stopped after an I/O failure: restart the process, and start-up "
                         "recovery decides from what the log holds on disk");
  }
  RecoveryReport report;
  report.dry_run = dry_run;
  redrive_unfinished(report, dry_run);
  decide_prepared(report, dry_run);
  if (!dry_run) {
    // Markers of decisions whose transactions are fully decided are no longer needed.
    std::vector<DecisionStore*> stores;
    {
      std::lock_guard lock(mutex_);
      for (auto& [name, reg] : resources_) {
        if (auto* s = reg.target.decision_store.get()) stores.push_back(s);
      }
    }
    // Only when nothing of the transaction is owed, and every resource could be asked: a
    // marker forgotten too early would make a later run presume abort for a branch it missed.
    const bool all_asked = std::none_of(report.owed.begin(), report.owed.end(),
                                        [](const OwedWork& o) { return o.xid.gtrid.empty(); });
    for (const auto& a : report.actions) {
      if (!all_asked || a.kind != RecoveryAction::Kind::commit || a.xid.gtrid.empty()) continue;
      const bool owed = std::any_of(report.owed.begin(), report.owed.end(),
                                    [&](const OwedWork& o) { return o.xid.gtrid == a.xid.gtrid; });
      if (!owed) {
        for (auto* s : stores) s->forget_decision(a.xid.gtrid);
      }
    }
  }
  if (!dry_run && report.complete()) prune_decision_markers();
  if (!report.actions.empty() || !report.owed.empty()) {
    log(report.owed.empty() ? LogLevel::info : LogLevel::warning, report.describe());
  }
  std::lock_guard lock(mutex_);
  last_ = report;
  return report;
}

std::vector<ForeignBranch> Recovery::list_foreign(std::vector<OwedWork>* unreadable) {
  std::lock_guard run_lock(run_mutex_);
  std::vector<std::pair<std::string, std::shared_ptr<RecoverableResource>>> recs;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, reg] : resources_) recs.emplace_back(name, reg.target.recoverable);
  }
  std::vector<ForeignBranch> out;
  for (auto& [name, rec] : recs) {
    if (rec == nullptr) continue;
    try {
      for (Xid& xid : rec->recover_all_nodes()) {
        if (xid.gtrid.node() != log_->node_id()) out.push_back({name, std::move(xid)});
      }
    } catch (...) {
      if (unreadable != nullptr) {
        unreadable->push_back(
            {name, Xid{},
             "cannot list other nodes' prepared ids: " + error_message(std::current_exception())});
      }
    }
  }
  return out;
}

RecoveryReport Recovery::roll_back_lost_node(const NodeId& lost_node, bool dry_run) {
  std::lock_guard run_lock(run_mutex_);
  if (lost_node == log_->node_id()) {
    throw UsageError("node " + lost_node.to_hex() + " is this decision log's own node: its " +
                     "branches are decided from the log by Recovery::run, not rolled back " +
                     "blindly");
  }
  if (log_->stats().failed) {
    throw LogFailedError("the decision log in '" + log_->dir() +
                         "' is stopped after an I/O failure: it cannot record the heuristic "
                         "outcomes; restart the process first");
  }
  std::vector<std::pair<std::string, Registered*>> regs;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, reg] : resources_) regs.emplace_back(name, &reg);
  }
  RecoveryReport report;
  report.dry_run = dry_run;
  const std::string why =
      "prepared branch of node " + lost_node.to_hex() +
      ", whose decision log is lost, rolled back on an operator's explicit request; if that "
      "transaction committed elsewhere, its other branches now disagree";
  for (auto& [name, reg] : regs) {
    auto* rec = reg->target.recoverable.get();
    if (rec == nullptr) continue;
    std::vector<Xid> prepared;
    try {
      prepared = rec->recover(lost_node);
    } catch (...) {
      report.owed.push_back(
          {name, Xid{}, "cannot list prepared ids: " + error_message(std::current_exception())});
      continue;
    }
    for (const Xid& xid : prepared) {
      if (xid.gtrid.node() != lost_node) continue;
      if (dry_run) {
        report.actions.push_back({RecoveryAction::Kind::rollback, name, xid,
                                  "would roll back (lost node), recorded as a heuristic outcome"});
        continue;
      }
      try {
        const auto outcome = rec->rollback_prepared(xid);
        HeuristicRecord h;
        h.gtrid = xid.gtrid;
        h.resource = name;
        h.bqual = xid.bqual;
        h.outcome = outcome == RecoverableResource::Outcome::unknown_id
                        ? "already finished (lost node)"
                        : "rolled back for a lost node";
        h.detail = why;
        report.actions.push_back(
            {RecoveryAction::Kind::heuristic, name, xid, h.outcome + ": " + why});
        detail::count(detail::Counter::heuristics);
        log_->log_heuristic(h);
      } catch (...) {
        report.owed.push_back(
            {name, xid, "rollback failed: " + error_message(std::current_exception())});
      }
    }
  }
  if (!report.actions.empty() || !report.owed.empty()) {
    log(report.owed.empty() ? LogLevel::warning : LogLevel::error, report.describe());
  }
  return report;
}

void Recovery::prune_decision_markers() {
  // Once per process: a complete run has decided every branch that earlier runs of this node
  // (earlier epochs) left prepared in the registered resources, so their markers are never
  // asked for again. Later epochs' markers are left to forget_decision.
  if (markers_pruned_) return;
  std::vector<std::pair<std::string, DecisionStore*>> stores;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, reg] : resources_) {
      if (auto* s = reg.target.decision_store.get()) stores.emplace_back(name, s);
    }
  }
  bool all = true;
  for (auto& [name, store] : stores) {
    try {
      const std::size_t n = store->forget_decisions_before(log_->node_id(), log_->epoch());
      if (n > 0) {
        log(LogLevel::info, "recovery: dropped " + std::to_string(n) +
                                " decision marker(s) of earlier runs from resource '" + name + "'");
      }
    } catch (...) {
      all = false;
      log(LogLevel::warning,
          "recovery: could not drop the decision markers of earlier runs "
          "from resource '" +
              name + "' (" + error_message(std::current_exception()) +
              "); tried again after the next complete run");
    }
  }
  markers_pruned_ = all;
}

RecoveryReport Recovery::last_report() const {
  std::lock_guard lock(mutex_);
  return last_;
}

void Recovery::start_background(std::chrono::milliseconds interval) {
  stop_background();
  {
    std::lock_guard lock(bg_mutex_);
    bg_stop_ = false;
  }
  bg_ = std::thread([this, interval] {
    std::unique_lock lock(bg_mutex_);
    while (!bg_stop_) {
      bg_cv_.wait_for(lock, interval, [this] { return bg_stop_; });
      if (bg_stop_) break;
      if (last_report().complete()) continue;
      lock.unlock();
      try {
        run(false);
      } catch (...) {
        log(LogLevel::error,
            "background recovery failed: " + error_message(std::current_exception()));
      }
      lock.lock();
    }
  });
}

void Recovery::stop_background() {
  {
    std::lock_guard lock(bg_mutex_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_.joinable()) bg_.join();
}

}  // namespace xact
