#include <xact/testing/recording_resource.hpp>

#include <xact/errors.hpp>
#include <xact/transaction.hpp>

namespace xact::testing {

void CallLog::add(std::string entry) {
  std::lock_guard lock(mutex_);
  entries_.push_back(std::move(entry));
}

std::vector<std::string> CallLog::entries() const {
  std::lock_guard lock(mutex_);
  return entries_;
}

std::vector<std::string> CallLog::of(const std::string& resource) const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  const std::string prefix = resource + ".";
  for (const auto& e : entries_) {
    if (e.compare(0, prefix.size(), prefix) == 0) out.push_back(e.substr(prefix.size()));
  }
  return out;
}

void CallLog::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
}

namespace {

class RecordingSavepoint final : public ResourceSavepoint {
 public:
  RecordingSavepoint(std::shared_ptr<RecordingResource> rm, std::optional<std::string> staged,
                     std::function<void()> on_rollback)
      : rm_(std::move(rm)), staged_(std::move(staged)), on_rollback_(std::move(on_rollback)) {}
  void rollback() override { on_rollback_(); }
  const std::optional<std::string>& staged() const { return staged_; }

 private:
  std::shared_ptr<RecordingResource> rm_;
  std::optional<std::string> staged_;
  std::function<void()> on_rollback_;
};

}  // namespace

RecordingResource::RecordingResource(std::string name, std::shared_ptr<CallLog> log,
                                     RecordingOptions options)
    : name_(std::move(name)), log_(std::move(log)), options_(std::move(options)) {}

SortKey RecordingResource::sort_key() const {
  return options_.sort_key ? *options_.sort_key : SortKey(name_);
}

void RecordingResource::set(Transaction& txn, std::string value) {
  txn.join(shared_from_this());
  staged_ = std::move(value);
}

void RecordingResource::drop_volatile() {
  staged_.reset();
  begun_gid_.clear();
}

void RecordingResource::record(Step step, const char* name) {
  if (log_) log_->add(name_ + "." + name);
  maybe_fail(step);
}

void RecordingResource::maybe_fail(Step step) {
  if (options_.fail_at != step || options_.fail_times == 0) return;
  if (options_.fail_times > 0) --options_.fail_times;
  if (options_.thrower) options_.thrower(step);
  throw ResourceError("resource '" + name_ + "': injected failure");
}

void RecordingResource::abort(Transaction& txn) noexcept {
  staged_.reset();
  try {
    record(Step::abort, "abort");  // an injected failure is a failed rollback, reported
  } catch (...) {
    txn.report_rollback_failure(*this, std::current_exception());
  }
}

void RecordingResource::tpc_begin(Transaction& txn) {
  record(Step::tpc_begin, "tpc_begin");
  begun_gid_ = txn.xid_for(*this).to_gid();
}

void RecordingResource::commit(Transaction&) { record(Step::commit, "commit"); }

Vote RecordingResource::tpc_vote(Transaction&) {
  record(Step::tpc_vote, "tpc_vote");
  if (options_.read_only || !staged_) {
    staged_.reset();
    return Vote::read_only;
  }
  prepared_[begun_gid_] = *staged_;
  return Vote::yes;
}

void RecordingResource::tpc_finish(Transaction&) {
  record(Step::tpc_finish, "tpc_finish");
  auto it = prepared_.find(begun_gid_);
  if (it != prepared_.end()) {
    committed_ = it->second;
    prepared_.erase(it);
  }
  staged_.reset();
}

void RecordingResource::tpc_abort(Transaction& txn) noexcept {
  try {
    record(Step::tpc_abort, "tpc_abort");
  } catch (...) {
    // An injected failure: the rollback did not happen; the branch stays prepared for the
    // re-driver (rollback_prepared), as a server that went away would leave it.
    txn.report_rollback_failure(*this, std::current_exception());
    staged_.reset();
    return;
  }
  prepared_.erase(begun_gid_);
  staged_.reset();
}

std::unique_ptr<ResourceSavepoint> RecordingResource::savepoint(Transaction&) {
  record(Step::savepoint, "savepoint");
  auto self = shared_from_this();
  auto snapshot = staged_;
  return std::make_unique<RecordingSavepoint>(self, snapshot, [self, snapshot] {
    self->record(Step::savepoint_rollback, "savepoint_rollback");
    self->staged_ = snapshot;
  });
}

bool RecordingResource::should_retry(const std::exception_ptr&) const noexcept {
  return options_.retry_everything;
}

void RecordingResource::commit_one_phase(Transaction& txn, const CommitRecord* decision) {
  record(Step::commit_one_phase, decision ? "commit_one_phase+decision" : "commit_one_phase");
  if (staged_) committed_ = *staged_;
  staged_.reset();
  if (decision) decisions_.insert(txn.gtrid().to_hex());
}

void RecordingResource::check_reachable(const char* call) const {
  if (unreachable_.load()) {
    throw ResourceError("resource '" + name_ + "': " + call + ": cannot reach it (injected)");
  }
}

std::vector<Xid> RecordingResource::recover(const NodeId& node) {
  check_reachable("recover");
  if (log_) log_->add(name_ + ".recover");
  std::vector<Xid> out;
  for (const auto& [gid, value] : prepared_) {
    auto xid = Xid::from_gid(gid);
    if (xid && xid->gtrid.node() == node) out.push_back(*xid);
  }
  return out;
}

RecoverableResource::Outcome RecordingResource::commit_prepared(const Xid& xid) {
  check_reachable("commit_prepared");
  if (log_) log_->add(name_ + ".commit_prepared");
  auto it = prepared_.find(xid.to_gid());
  if (it == prepared_.end()) return Outcome::unknown_id;
  committed_ = it->second;
  prepared_.erase(it);
  return Outcome::done;
}

RecoverableResource::Outcome RecordingResource::rollback_prepared(const Xid& xid) {
  check_reachable("rollback_prepared");
  if (log_) log_->add(name_ + ".rollback_prepared");
  return prepared_.erase(xid.to_gid()) ? Outcome::done : Outcome::unknown_id;
}

DecisionStore::Lookup RecordingResource::lookup_decision(const Gtrid& gtrid) {
  return decisions_.count(gtrid.to_hex()) ? Lookup::committed : Lookup::not_found;
}

void RecordingResource::forget_decision(const Gtrid& gtrid) noexcept {
  if (log_) log_->add(name_ + ".forget_decision");
  decisions_.erase(gtrid.to_hex());
}

}  // namespace xact::testing
