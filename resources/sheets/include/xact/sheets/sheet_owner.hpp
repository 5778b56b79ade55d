// SheetOwner: a persistent object that owns property sheets.
//
//   class Document : public xact::sheets::SheetOwner {
//    public:
//     void save(StateWriter& out) const override { save_sheets(out); out.write(body_); }
//     void load(StateReader& in, std::uint32_t) override { load_sheets(in); in.read(body_); }
//     ...
//   };
//   doc->add_sheet("dublin_core", conn);                 // a new doc gets its oid here
//   doc->sheet("dublin_core").set("title", "Ulysses");
//   auto title = doc->sheet("dublin_core").get<std::string>("title");
//
// The object stores each sheet's key (sheet_id) in its own state, written with the object; the
// row carries the object's database name and oid, so programs outside xact join the two. The
// sheet is found through the SheetStore that defines it (SheetStore::for_sheet) and the
// transaction of current_manager(), or the one given.
//
// Thread-safety: as any Persistent.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <xact/objectstore/connection.hpp>
#include <xact/objectstore/persistent.hpp>
#include <xact/sheets/sheet.hpp>
#include <xact/transaction.hpp>

namespace xact::sheets {

class SheetOwner : public objectstore::Persistent, public std::enable_shared_from_this<SheetOwner> {
 public:
  /// The sheet, loaded on first use in the transaction. SheetNotFoundError when the object has
  /// no such sheet; UsageError when no SheetStore defines it or the object has no oid.
  Sheet& sheet(std::string_view name);
  Sheet& sheet(std::string_view name, Transaction& txn);
  bool has_sheet(std::string_view name) const;
  std::optional<std::int64_t> sheet_key(std::string_view name) const;
  /// Creates the sheet (its row is inserted in the transaction's branch now) and stores its key
  /// in the object. An object without an oid is added to `conn` first (UsageError without one).
  /// UsageError when the object already has that sheet.
  Sheet& add_sheet(std::string_view name, objectstore::Connection* conn = nullptr);
  Sheet& add_sheet(std::string_view name, Transaction& txn,
                   objectstore::Connection* conn = nullptr);
  /// Deletes the sheet's row at commit and forgets its key.
  void remove_sheet(std::string_view name);

  /// The owner as the sheet rows record it (database name, oid).
  Owner sheet_owner() const;

 protected:
  /// Write / read the sheet keys as part of the object's state.
  void save_sheets(objectstore::StateWriter& out) const;
  void load_sheets(objectstore::StateReader& in);

 private:
  std::map<std::string, std::int64_t, std::less<>> sheet_keys_;
};

}  // namespace xact::sheets
