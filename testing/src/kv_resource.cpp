#include <xact/testing/kv_resource.hpp>

#include <xact/crash_point.hpp>
#include <xact/errors.hpp>
#include <xact/transaction.hpp>

namespace xact::testing {

namespace {

// Record types of a store file.
enum : std::uint8_t { kPrepare = 1, kCommit = 2, kRollback = 3, kApply = 4, kForget = 5 };

void put_str(std::string& out, std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  out.append(s);
}

std::string get_str(std::string_view& in) {
  if (in.size() < 4) throw StorageError("kv store: truncated string in a record");
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i)
    n |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(4);
  if (in.size() < n) throw StorageError("kv store: truncated string in a record");
  std::string s(in.substr(0, n));
  in.remove_prefix(n);
  return s;
}

void put_writes(std::string& out, const KvStore::Writes& writes) {
  put_str(out, std::to_string(writes.size()));
  for (const auto& [key, value] : writes) {
    put_str(out, key);
    out.push_back(value ? 1 : 0);
    if (value) put_str(out, *value);
  }
}

KvStore::Writes get_writes(std::string_view& in) {
  KvStore::Writes writes;
  const auto n = std::stoul(get_str(in));
  for (unsigned long i = 0; i < n; ++i) {
    std::string key = get_str(in);
    if (in.empty()) throw StorageError("kv store: truncated write in a record");
    const bool present = in[0] != 0;
    in.remove_prefix(1);
    writes[key] = present ? std::optional<std::string>(get_str(in)) : std::nullopt;
  }
  return writes;
}

}  // namespace

// ---- KvStore -----------------------------------------------------------------------------------

std::shared_ptr<KvStore> KvStore::in_memory() { return std::shared_ptr<KvStore>(new KvStore); }

std::shared_ptr<KvStore> KvStore::open_file(io::Env& env, const std::string& path) {
  std::shared_ptr<KvStore> store(new KvStore);
  std::uint64_t end = 0;
  if (env.exists(path)) {
    auto file = env.new_random_access_file(path);
    io::ScanOptions options;
    options.throw_on_corruption = true;
    io::RecordReader reader(*file, options);
    while (auto record = reader.next()) store->replay(*record);
    end = reader.report().end_of_data;
    if (end != file->size()) env.truncate_file(path, end);  // a cut-off last write
  }
  store->file_ = env.new_appendable_file(path);
  store->writer_ = std::make_unique<io::RecordWriter>(*store->file_, end);
  return store;
}

void KvStore::replay(const io::Record& record) {
  std::string_view in = record.payload;
  switch (record.type) {
    case kPrepare: {
      std::string gid = get_str(in);
      prepared_[gid] = get_writes(in);
      break;
    }
    case kCommit: {
      auto it = prepared_.find(get_str(in));
      if (it != prepared_.end()) {
        apply_locked(it->second);
        prepared_.erase(it);
      }
      break;
    }
    case kRollback: prepared_.erase(get_str(in)); break;
    case kApply: {
      std::string decision = get_str(in);
      apply_locked(get_writes(in));
      if (!decision.empty()) decisions_.insert(decision);
      break;
    }
    case kForget: decisions_.erase(get_str(in)); break;
    default:
      throw StorageError("kv store: unknown record type " + std::to_string(record.type) +
                         " at offset " + std::to_string(record.offset));
  }
}

void KvStore::persist(std::uint8_t type, const std::string& payload) {
  if (!writer_) return;
  writer_->add(type, payload);
  writer_->sync();
}

void KvStore::apply_locked(const Writes& writes) {
  for (const auto& [key, value] : writes) {
    if (value) {
      data_[key] = *value;
    } else {
      data_.erase(key);
    }
  }
}

std::optional<std::string> KvStore::get(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, std::string> KvStore::snapshot() const {
  std::lock_guard lock(mutex_);
  return data_;
}

void KvStore::prepare(const std::string& gid, Writes writes) {
  std::lock_guard lock(mutex_);
  for (const auto& [other, held] : prepared_) {
    for (const auto& [key, value] : writes) {
      if (held.count(key)) {
        throw ConflictError("key '" + key + "' is held by prepared transaction " + other +
                            "; retry the transaction");
      }
    }
  }
  std::string payload;
  put_str(payload, gid);
  put_writes(payload, writes);
  persist(kPrepare, payload);
  prepared_[gid] = std::move(writes);
}

bool KvStore::commit_prepared(const std::string& gid) {
  std::lock_guard lock(mutex_);
  auto it = prepared_.find(gid);
  if (it == prepared_.end()) return false;
  std::string payload;
  put_str(payload, gid);
  persist(kCommit, payload);
  apply_locked(it->second);
  prepared_.erase(it);
  return true;
}

bool KvStore::rollback_prepared(const std::string& gid) {
  std::lock_guard lock(mutex_);
  if (!prepared_.count(gid)) return false;
  std::string payload;
  put_str(payload, gid);
  persist(kRollback, payload);
  prepared_.erase(gid);
  return true;
}

void KvStore::apply(const Writes& writes, const std::string& decision) {
  std::lock_guard lock(mutex_);
  for (const auto& [other, held] : prepared_) {
    for (const auto& [key, value] : writes) {
      if (held.count(key)) {
        throw ConflictError("key '" + key + "' is held by prepared transaction " + other +
                            "; retry the transaction");
      }
    }
  }
  std::string payload;
  put_str(payload, decision);
  put_writes(payload, writes);
  persist(kApply, payload);
  apply_locked(writes);
  if (!decision.empty()) decisions_.insert(decision);
}

std::vector<std::string> KvStore::prepared_gids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [gid, writes] : prepared_) out.push_back(gid);
  return out;
}

bool KvStore::has_decision(const std::string& gtrid_hex) const {
  std::lock_guard lock(mutex_);
  return decisions_.count(gtrid_hex) > 0;
}

void KvStore::forget_decision(const std::string& gtrid_hex) {
  std::lock_guard lock(mutex_);
  if (!decisions_.count(gtrid_hex)) return;
  std::string payload;
  put_str(payload, gtrid_hex);
  persist(kForget, payload);
  decisions_.erase(gtrid_hex);
}

// ---- KvResource --------------------------------------------------------------------------------

namespace {

class KvSavepoint final : public ResourceSavepoint {
 public:
  KvSavepoint(KvStore::Writes* target, KvStore::Writes copy, std::shared_ptr<KvResource> owner)
      : target_(target), copy_(std::move(copy)), owner_(std::move(owner)) {}
  void rollback() override { *target_ = copy_; }

 private:
  KvStore::Writes* target_;
  KvStore::Writes copy_;
  std::shared_ptr<KvResource> owner_;  // keeps target_ alive
};

}  // namespace

KvResource::KvResource(std::string name, std::shared_ptr<KvStore> store, KvOptions options)
    : name_(std::move(name)), store_(std::move(store)), options_(options) {
  check_branch_name(name_);
}

void KvResource::put(Transaction& txn, const std::string& key, std::string value) {
  txn.join(shared_from_this());
  staged_[key] = std::move(value);
}

void KvResource::erase(Transaction& txn, const std::string& key) {
  txn.join(shared_from_this());
  staged_[key] = std::nullopt;
}

std::optional<std::string> KvResource::get(const std::string& key) const {
  auto it = staged_.find(key);
  if (it != staged_.end()) return it->second;
  return store_->get(key);
}

void KvResource::abort(Transaction&) noexcept { staged_.clear(); }

void KvResource::tpc_begin(Transaction& txn) { gid_ = txn.xid_for(*this).to_gid(); }

void KvResource::commit(Transaction&) {}

Vote KvResource::tpc_vote(Transaction&) {
  if (staged_.empty()) return Vote::read_only;
  store_->prepare(gid_, std::move(staged_));
  staged_.clear();
  crash_point(name_ + ".after_prepare");
  return Vote::yes;
}

void KvResource::tpc_finish(Transaction&) {
  store_->commit_prepared(gid_);  // idempotent: a second call finds nothing
  crash_point(name_ + ".after_commit_prepared");
}

void KvResource::tpc_abort(Transaction& txn) noexcept {
  staged_.clear();
  try {
    if (!gid_.empty()) store_->rollback_prepared(gid_);
  } catch (...) {
    txn.report_rollback_failure(*this, std::current_exception());  // the re-driver retries it
  }
}

std::unique_ptr<ResourceSavepoint> KvResource::savepoint(Transaction&) {
  return std::make_unique<KvSavepoint>(&staged_, staged_, shared_from_this());
}

void KvResource::commit_one_phase(Transaction& txn, const CommitRecord* decision) {
  store_->apply(staged_, decision ? txn.gtrid().to_hex() : std::string());
  staged_.clear();
  crash_point(name_ + ".after_one_phase");
}

std::vector<Xid> KvResource::recover(const NodeId& node) {
  std::vector<Xid> out;
  for (const auto& gid : store_->prepared_gids()) {
    auto xid = Xid::from_gid(gid);
    if (xid && xid->gtrid.node() == node && xid->bqual == name_) out.push_back(*xid);
  }
  return out;
}

std::vector<Xid> KvResource::recover_all_nodes() {
  std::vector<Xid> out;
  for (const auto& gid : store_->prepared_gids()) {
    auto xid = Xid::from_gid(gid);
    if (xid && xid->bqual == name_) out.push_back(*xid);
  }
  return out;
}

RecoverableResource::Outcome KvResource::commit_prepared(const Xid& xid) {
  return store_->commit_prepared(xid.to_gid()) ? Outcome::done : Outcome::unknown_id;
}

RecoverableResource::Outcome KvResource::rollback_prepared(const Xid& xid) {
  return store_->rollback_prepared(xid.to_gid()) ? Outcome::done : Outcome::unknown_id;
}

DecisionStore::Lookup KvResource::lookup_decision(const Gtrid& gtrid) {
  return store_->has_decision(gtrid.to_hex()) ? Lookup::committed : Lookup::not_found;
}

void KvResource::forget_decision(const Gtrid& gtrid) noexcept {
  try {
    store_->forget_decision(gtrid.to_hex());
  } catch (...) {
    // A marker left behind is harmless: recovery forgets it later.
  }
}

}  // namespace xact::testing
