// Schema evolution helpers (the Durus FAQ's questions, answered by the library):
//
// - "How do I rename a class?" Register the old stored name as an alias (registry.hpp):
//   old records load into the new class; records are rewritten under the new name the next
//   time each object is committed, or all at once with rewrite_type().
// - "How do I change what a class stores?" Raise its state version; load() gets the version
//   a record was written with and reads the old layout.
// - "How do I find every instance of a class?" scan_type().
// - "How do I upgrade them all?" rewrite_type(): loads, upgrades (load() of the old version)
//   and rewrites every instance in batches of transactions, retrying conflicts.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>
#include <vector>

#include <xact/objectstore/db.hpp>

namespace xact::objectstore {

/// The oids of every live object stored as `type_name` or any of its aliases (registered in
/// `registry`), from the storage's current state, in ascending order.
std::vector<Oid> scan_type(const Storage& storage, std::string_view type_name,
                           const TypeRegistry& registry = TypeRegistry::global());

struct RewriteOptions {
  /// Objects per transaction.
  std::size_t batch_size = 1000;
  /// Called before each object is rewritten (e.g. to fix data); may change it.
  std::function<void(Persistent&)> visit{};
};

struct RewriteReport {
  std::size_t objects = 0;       ///< objects rewritten
  std::size_t transactions = 0;  ///< transactions committed
};

/// Rewrites every instance of `type_name` (and its aliases) in its current registered name
/// and version, `batch_size` objects per transaction, each transaction retried on conflict
/// (xact::run). Uses its own explicit transaction manager.
RewriteReport rewrite_type(DB& db, std::string_view type_name, RewriteOptions options = {});

}  // namespace xact::objectstore
