// Errors of the object store, members of xact's one family (<xact/errors.hpp>): a
// `catch (xact::ConflictError&)` or `catch (xact::ReadConflictError&)` catches them, and
// xact::run retries them; the object store's types add the details (oid, type, serials).
//
//   xact::ConflictError (virtual base: one ConflictError, one what() in each object)
//   ├── objectstore::ConflictError     a write lost the race: another transaction committed
//   │   │                              (or holds prepared) a newer revision of the object;
//   │   │                              retry the whole transaction
//   │   └── objectstore::ReadConflictError  an object read with read_current() changed;
//   │                                       also an xact::ReadConflictError
//   └── xact::ReadConflictError
//       └── objectstore::ReadConflictError
//   xact::Error
//   ├── ObjectNotFoundError            no revision of the oid in the snapshot (a dangling
//   │                                  reference, or an oid from another storage)
//   └── StateError                     a stored state cannot be decoded (unknown type name,
//                                      wrong value kind, truncated bytes): names the oid, the
//                                      type and the offset; fix the type's load() or register
//                                      an alias
#pragma once

#include <string>

#include <xact/errors.hpp>
#include <xact/objectstore/types.hpp>

namespace xact::objectstore {

class ConflictError : public virtual xact::ConflictError {
 public:
  /// `committed`: the serial that won (kNoTid when the object is locked by a prepared
  /// transaction whose tid is not known yet); `read`: the serial this transaction's change
  /// was based on. `type` is the registered type name, or empty when unknown.
  ConflictError(Oid oid, std::string type, Tid committed, Tid read, std::string reason = {});
  Oid oid() const noexcept { return oid_; }
  const std::string& type_name() const noexcept { return type_; }
  Tid committed_serial() const noexcept { return committed_; }
  Tid read_serial() const noexcept { return read_; }
  /// True when the object is locked by another prepared transaction (no committed serial).
  bool locked() const noexcept { return committed_ == kNoTid; }

 protected:
  ConflictError(const std::string& message, Oid oid, std::string type, Tid committed, Tid read);

 private:
  Oid oid_;
  std::string type_;
  Tid committed_;
  Tid read_;
};

class ReadConflictError : public ConflictError, public xact::ReadConflictError {
 public:
  ReadConflictError(Oid oid, std::string type, Tid committed, Tid read);

 private:
  ReadConflictError(const std::string& message, Oid oid, std::string type, Tid committed, Tid read);
};

class ObjectNotFoundError : public xact::Error {
 public:
  ObjectNotFoundError(Oid oid, const std::string& detail);
  Oid oid() const noexcept { return oid_; }

 private:
  Oid oid_;
};

/// A reference whose target does not exist in its database (expired from a memory database,
/// packed away, or that database's file restored from an older backup): a cross-database
/// reference, a reference within one database, or a cached object whose state is gone.
class DanglingReferenceError : public ObjectNotFoundError {
 public:
  DanglingReferenceError(std::string database, Oid oid, const std::string& detail);
  const std::string& database() const noexcept { return database_; }

 private:
  std::string database_;
};

class StateError : public xact::Error {
 public:
  using xact::Error::Error;
};

}  // namespace xact::objectstore
