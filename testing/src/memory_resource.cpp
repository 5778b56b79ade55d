#include <xact/testing/memory_resource.hpp>

#include <xact/errors.hpp>
#include <xact/transaction.hpp>

namespace xact::testing {

std::optional<std::string> MemoryStore::get(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, std::string> MemoryStore::snapshot() const {
  std::lock_guard lock(mutex_);
  return data_;
}

void MemoryStore::prepare(const std::string& gid, Writes writes) {
  std::lock_guard lock(mutex_);
  for (const auto& [other, held] : prepared_) {
    for (const auto& [key, value] : writes) {
      if (held.count(key)) {
        throw ConflictError("key '" + key + "' is held by prepared transaction " + other +
                            "; retry the transaction");
      }
    }
  }
  prepared_[gid] = std::move(writes);
}

bool MemoryStore::commit_prepared(const std::string& gid) {
  std::lock_guard lock(mutex_);
  auto it = prepared_.find(gid);
  if (it == prepared_.end()) return false;
  for (const auto& [key, value] : it->second) {
    if (value) {
      data_[key] = *value;
    } else {
      data_.erase(key);
    }
  }
  prepared_.erase(it);
  return true;
}

bool MemoryStore::rollback_prepared(const std::string& gid) {
  std::lock_guard lock(mutex_);
  return prepared_.erase(gid) > 0;
}

void MemoryStore::apply(const Writes& writes) {
  std::lock_guard lock(mutex_);
  for (const auto& [key, value] : writes) {
    if (value) {
      data_[key] = *value;
    } else {
      data_.erase(key);
    }
  }
}

std::vector<std::string> MemoryStore::prepared_gids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [gid, writes] : prepared_) out.push_back(gid);
  return out;
}

namespace {

class MemorySavepoint final : public ResourceSavepoint {
 public:
  MemorySavepoint(MemoryStore::Writes* target, MemoryStore::Writes copy,
                  std::shared_ptr<MemoryResource> owner)
      : target_(target), copy_(std::move(copy)), owner_(std::move(owner)) {}
  void rollback() override { *target_ = copy_; }

 private:
  MemoryStore::Writes* target_;
  MemoryStore::Writes copy_;
  std::shared_ptr<MemoryResource> owner_;  // keeps target_ alive
};

}  // namespace

MemoryResource::MemoryResource(std::string name, std::shared_ptr<MemoryStore> store)
    : name_(std::move(name)), store_(std::move(store)) {
  check_branch_name(name_);
}

void MemoryResource::put(Transaction& txn, const std::string& key, std::string value) {
  txn.join(shared_from_this());
  staged_[key] = std::move(value);
}

void MemoryResource::erase(Transaction& txn, const std::string& key) {
  txn.join(shared_from_this());
  staged_[key] = std::nullopt;
}

std::optional<std::string> MemoryResource::get(const std::string& key) const {
  auto it = staged_.find(key);
  if (it != staged_.end()) return it->second;
  return store_->get(key);
}

void MemoryResource::abort(Transaction&) { staged_.clear(); }

void MemoryResource::tpc_begin(Transaction& txn) { gid_ = txn.xid_for(*this).to_gid(); }

void MemoryResource::commit(Transaction&) {}

Vote MemoryResource::tpc_vote(Transaction&) {
  if (staged_.empty()) return Vote::read_only;
  store_->prepare(gid_, std::move(staged_));
  staged_.clear();
  return Vote::yes;
}

void MemoryResource::tpc_finish(Transaction&) {
  store_->commit_prepared(gid_);  // idempotent: a second call finds nothing
}

void MemoryResource::tpc_abort(Transaction&) {
  staged_.clear();
  if (!gid_.empty()) store_->rollback_prepared(gid_);
}

std::unique_ptr<ResourceSavepoint> MemoryResource::savepoint(Transaction&) {
  return std::make_unique<MemorySavepoint>(&staged_, staged_, shared_from_this());
}

void MemoryResource::commit_one_phase(Transaction&, const CommitRecord*) {
  store_->apply(staged_);
  staged_.clear();
}

std::vector<Xid> MemoryResource::recover(const NodeId& node) {
  std::vector<Xid> out;
  for (const auto& gid : store_->prepared_gids()) {
    auto xid = Xid::from_gid(gid);
    if (xid && xid->gtrid.node() == node && xid->bqual == name_) out.push_back(*xid);
  }
  return out;
}

RecoverableResource::Outcome MemoryResource::commit_prepared(const Xid& xid) {
  return store_->commit_prepared(xid.to_gid()) ? Outcome::done : Outcome::unknown_id;
}

RecoverableResource::Outcome MemoryResource::rollback_prepared(const Xid& xid) {
  return store_->rollback_prepared(xid.to_gid()) ? Outcome::done : Outcome::unknown_id;
}

}  // namespace xact::testing
