#include <xact/objectstore/errors.hpp>

#include <utility>

namespace xact::objectstore {

namespace {

std::string object_name(Oid oid, const std::string& type) {
  std::string out = "object " + oid_repr(oid);
  if (!type.empty()) out += " (" + type + ")";
  return out;
}

std::string conflict_message(Oid oid, const std::string& type, Tid committed, Tid read,
                             const std::string& reason) {
  std::string out = "conflict on " + object_name(oid, type);
  if (committed == kNoTid) {
    out += " is locked by another prepared transaction";
  } else {
    out += ": another transaction committed serial " + tid_repr(committed) +
           " after this transaction read serial " + tid_repr(read);
  }
  out += "; retry the transaction";
  if (!reason.empty()) out += " (" + reason + ")";
  return out;
}

std::string read_conflict_message(Oid oid, const std::string& type, Tid committed, Tid read) {
  return "read conflict on " + object_name(oid, type) + ": it changed (serial " +
         tid_repr(committed) + ") since this transaction read it (serial " + tid_repr(read) +
         ") and asked to keep it current; retry the transaction";
}

}  // namespace

ConflictError::ConflictError(Oid oid, std::string type, Tid committed, Tid read, std::string reason)
    // `type` is copied, not moved: the message argument reads it, and argument evaluation
    // order is unspecified.
    : ConflictError(conflict_message(oid, type, committed, read, reason), oid, type, committed,
                    read) {}

ConflictError::ConflictError(const std::string& message, Oid oid, std::string type, Tid committed,
                             Tid read)
    : xact::ConflictError(message),
      oid_(oid),
      type_(std::move(type)),
      committed_(committed),
      read_(read) {}

ReadConflictError::ReadConflictError(Oid oid, std::string type, Tid committed, Tid read)
    : ReadConflictError(read_conflict_message(oid, type, committed, read), oid, type, committed,
                        read) {}

ReadConflictError::ReadConflictError(const std::string& message, Oid oid, std::string type,
                                     Tid committed, Tid read)
    // The most-derived class initializes the virtual base xact::ConflictError (the message);
    // the direct bases' initializations of it are skipped.
    : xact::ConflictError(message),
      objectstore::ConflictError(message, oid, std::move(type), committed, read),
      xact::ReadConflictError(message) {}

ObjectNotFoundError::ObjectNotFoundError(Oid oid, const std::string& detail)
    : xact::Error("object " + oid_repr(oid) + " not found in this snapshot" +
                  (detail.empty() ? std::string{} : ": " + detail)),
      oid_(oid) {}

DanglingReferenceError::DanglingReferenceError(std::string database, Oid oid,
                                               const std::string& detail)
    : ObjectNotFoundError(oid, "the reference to object " + oid_repr(oid) +
                                   " of database '" + database +
                                   "' dangles (the object expired, was packed away, or that "
                                   "database was restored from an older copy): " +
                                   detail),
      database_(std::move(database)) {}

}  // namespace xact::objectstore
