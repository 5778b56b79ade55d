// The errors of the shared conflict check (storage_conflicts.hpp): out of line, off the commit
// path.
#include "storage_conflicts.hpp"

#include <xact/objectstore/errors.hpp>
#include <xact/objectstore/file_storage.hpp>

namespace xact::objectstore::detail {

void throw_write_conflict(const ObjectWrite& write, Tid committed) {
  throw ConflictError(write.oid, record_type_name(write.data), committed, write.base);
}

void throw_read_conflict(Oid oid, std::string type, Tid committed, Tid read) {
  throw ReadConflictError(oid, std::move(type), committed, read);
}

void throw_in_doubt(Oid oid, const std::string& type, Tid read, const Xid& holder,
                    const std::string& storage) {
  throw InDoubtLockError(oid, type, read, holder, storage);
}

}  // namespace xact::objectstore::detail
