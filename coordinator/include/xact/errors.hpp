// The error hierarchy of xact, named after what the caller does next.
//
//   Error                       every error xact throws
//   ├── TransientError          retry the whole transaction (xact::run does)
//   │   ├── ConflictError       someone else changed what this transaction changes
//   │   │   └── ReadConflictError   ... or what it read and asked to keep current
//   │   ├── SerializationFailure    the database could not serialize this transaction
//   │   └── DeadlockError           the database chose this transaction as the victim
//   ├── InDoubtError            never retry: the outcome is unknown; recovery decides
//   ├── InvalidObjectReference  a reference the seat belt forbids; fix the program
//   ├── UsageError              the program called something in the wrong state or with
//   │   │                       bad arguments; fix the program
//   │   ├── NoTransactionError
//   │   ├── DoomedTransactionError
//   │   └── TransactionFailedError  a commit failed: abort() before anything else
//   ├── TransactionTimeoutError the transaction ran past its timeout; it must be aborted
//   ├── StorageError            I/O on xact's own files failed (a message names the file)
//   │   └── LogFailedError      the decision log refused a write after an earlier fsync
//   │                           failure; restart the process to recover
//   └── ResourceError           a participant failed for a reason that is not transient
//
// Every message says what happened and what to do. All classes are immutable values and
// safe to share between threads.
//
// One family: a module's own errors derive from these, so a catch of a type here catches the
// module's kind too (the object store's conflicts, with their oid, type and serials, are
// xact::ConflictError and xact::ReadConflictError). ConflictError is a virtual base of
// ReadConflictError so that a module's read conflict can be both its own conflict type and
// xact::ReadConflictError with a single ConflictError (and a single what()) inside; a class
// that derives from ConflictError virtually initializes it itself, in its most-derived class.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace xact {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class TransientError : public Error {
 public:
  using Error::Error;
};

class ConflictError : public TransientError {
 public:
  using TransientError::TransientError;
};

class ReadConflictError : public virtual ConflictError {
 public:
  explicit ReadConflictError(const std::string& what) : ConflictError(what) {}
  explicit ReadConflictError(const char* what) : ConflictError(what) {}
};

class SerializationFailure : public TransientError {
 public:
  using TransientError::TransientError;
};

class DeadlockError : public TransientError {
 public:
  using TransientError::TransientError;
};

class InDoubtError : public Error {
 public:
  using Error::Error;
};

class InvalidObjectReference : public Error {
 public:
  using Error::Error;
};

class UsageError : public Error {
 public:
  using Error::Error;
};

class NoTransactionError : public UsageError {
 public:
  using UsageError::UsageError;
};

class DoomedTransactionError : public UsageError {
 public:
  using UsageError::UsageError;
};

class TransactionFailedError : public UsageError {
 public:
  using UsageError::UsageError;
};

class TransactionTimeoutError : public Error {
 public:
  using Error::Error;
};

class StorageError : public Error {
 public:
  using Error::Error;
};

class LogFailedError : public StorageError {
 public:
  using StorageError::StorageError;
};

class ResourceError : public Error {
 public:
  using Error::Error;
};

/// The message of any captured exception: what() of a std::exception, a fixed text otherwise.
/// For logs and reports in catch-all paths.
std::string error_message(const std::exception_ptr& error);

}  // namespace xact
