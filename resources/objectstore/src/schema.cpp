#include <xact/objectstore/schema.hpp>

#include <algorithm>
#include <unordered_set>

#include <xact/manager.hpp>
#include <xact/retry.hpp>

namespace xact::objectstore {

std::vector<Oid> scan_type(const Storage& storage, std::string_view type_name,
                           const TypeRegistry& registry) {
  const std::vector<std::string> names = registry.names_of(type_name);
  const std::unordered_set<std::string_view> wanted(names.begin(), names.end());
  std::vector<Oid> oids;
  storage.for_each_object([&](Oid oid, Tid, std::string_view data) {
    if (wanted.count(record_type_name(data))) oids.push_back(oid);
    return true;
  });
  std::sort(oids.begin(), oids.end());
  return oids;
}

RewriteReport rewrite_type(DB& db, std::string_view type_name, RewriteOptions options) {
  if (options.batch_size == 0) options.batch_size = 1;
  const std::vector<Oid> oids = scan_type(db.storage(), type_name, db.registry());
  RewriteReport report;
  ExplicitTransactionManager tm;
  ConnectionOptions co;
  co.manager = &tm;
  auto conn = db.open(co);
  for (std::size_t start = 0; start < oids.size(); start += options.batch_size) {
    const std::size_t end = std::min(oids.size(), start + options.batch_size);
    xact::run(tm, [&](Transaction&) {
      for (std::size_t i = start; i < end; ++i) {
        std::shared_ptr<Persistent> obj;
        try {
          obj = conn->get(oids[i]);
        } catch (const ObjectNotFoundError&) {
          continue;  // deleted (packed) since the scan
        }
        obj->activate();
        if (options.visit) options.visit(*obj);
        obj->mark_changed();
      }
    });
    report.objects += end - start;
    ++report.transactions;
  }
  return report;
}

}  // namespace xact::objectstore
