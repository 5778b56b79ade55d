#include <xact/sheets/sheet_owner.hpp>

#include <xact/manager.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/sheets/sheet_store.hpp>

namespace xact::sheets {

namespace {

std::shared_ptr<SheetStore> store_for(std::string_view name) {
  auto store = SheetStore::for_sheet(name);
  if (!store) {
    throw UsageError("no SheetStore defines sheet '" + std::string(name.substr(0, 80)) +
                     "' in this process (SheetStore::define)");
  }
  return store;
}

}  // namespace

Owner SheetOwner::sheet_owner() const {
  if (state() == objectstore::ObjectState::unsaved || connection() == nullptr) {
    throw UsageError(
        "a sheet's owner needs an oid: add the object to a connection first "
        "(add_sheet(name, conn) does)");
  }
  return Owner{connection()->db().name(), static_cast<std::int64_t>(oid())};
}

bool SheetOwner::has_sheet(std::string_view name) const { return sheet_key(name).has_value(); }

std::optional<std::int64_t> SheetOwner::sheet_key(std::string_view name) const {
  read_access();
  auto it = sheet_keys_.find(name);
  if (it == sheet_keys_.end()) return std::nullopt;
  return it->second;
}

Sheet& SheetOwner::sheet(std::string_view name) { return sheet(name, current_manager().get()); }

Sheet& SheetOwner::sheet(std::string_view name, Transaction& txn) {
  const auto key = sheet_key(name);
  if (!key) {
    throw SheetNotFoundError("object " + std::to_string(oid()) + " has no sheet '" +
                             std::string(name.substr(0, 80)) + "' (add_sheet creates one)");
  }
  return store_for(name)->manager(txn).get(name, *key);
}

Sheet& SheetOwner::add_sheet(std::string_view name, objectstore::Connection* conn) {
  return add_sheet(name, current_manager().get(), conn);
}

Sheet& SheetOwner::add_sheet(std::string_view name, Transaction& txn,
                             objectstore::Connection* conn) {
  auto store = store_for(name);
  if (state() == objectstore::ObjectState::unsaved) {
    if (conn == nullptr) {
      throw UsageError(
          "add_sheet on a new object: pass the connection to add it to (the sheet "
          "row records the object's oid)");
    }
    conn->add(std::static_pointer_cast<objectstore::Persistent>(shared_from_this()));
  }
  write_access();
  if (sheet_keys_.count(name) != 0) {
    throw UsageError("object " + std::to_string(oid()) + " already has a sheet '" +
                     std::string(name.substr(0, 80)) + "'");
  }
  Sheet& s = store->manager(txn).create(name, sheet_owner());
  sheet_keys_.emplace(std::string(name), s.key());
  return s;
}

void SheetOwner::remove_sheet(std::string_view name) {
  Sheet& s = sheet(name);
  write_access();
  s.remove();
  sheet_keys_.erase(sheet_keys_.find(name));
}

void SheetOwner::save_sheets(objectstore::StateWriter& out) const { out.write(sheet_keys_); }

void SheetOwner::load_sheets(objectstore::StateReader& in) { in.read(sheet_keys_); }

}  // namespace xact::sheets
