// The object store's binary codec: how an object's state becomes the bytes a storage keeps.
//
// A stored object record (the `data` of every revision; byte layout in
// doc/objectstore_format.md):
//
//   u8      format (kRecordFormat)
//   varint  length of the type name, then its bytes (the registered, stable type name)
//   varint  state version (the type's version when the state was written)
//   values  the state: a sequence of tagged values, as the type's save() wrote them
//
// Every value starts with a one-byte tag, so a record can be walked without its type:
// verify tools, pack and reference checks find every reference in any record
// (for_each_reference), and a damaged record is reported instead of misread.
//
//   tag   value                      encoding after the tag
//   0x00  none                       -
//   0x01  false / 0x02 true          -
//   0x03  signed integer             zigzag varint
//   0x04  unsigned integer           varint
//   0x05  double                     8 bytes, IEEE 754, little-endian
//   0x06  string (UTF-8 by intent)   varint length, bytes
//   0x07  bytes                      varint length, bytes
//   0x08  reference                  varint oid
//   0x09  cross-database reference   varint length, database name, varint oid
//         (format 1's reserved layout: still read, no longer written by the object store)
//   0x0a  list                       varint count, then count values
//   0x0b  map                        varint count, then count (key, value) pairs
//   0x0c  cross-database reference   varint length, database name, varint oid,
//         (format 2)                 varint length, the target's type name
//
// Format versions: format 1 records (no 0x0c) are still read; this build writes format 2,
// whose typed cross-database reference carries the target's type name, so that a policy can
// judge a reference without loading its target (older builds refuse format 2 records with
// "unknown record format").
//
// Readers check every tag and length: a wrong kind or a truncated value throws StateError
// naming what was expected, what was found and at which offset. A length or count larger
// than the bytes left is rejected before anything is allocated. The two integer tags are
// one kind to readers: read_int/read_uint accept either when the value fits, so a field may
// change signedness between versions of a type.
//
// Thread-safety: StateWriter and StateReader have one user; the free functions are pure.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <xact/objectstore/errors.hpp>
#include <xact/objectstore/types.hpp>

namespace xact::objectstore {

class Connection;
class Persistent;
class StateWriter;
class StateReader;

/// A value type that writes itself into a state (Ref<T>, Value, user value types):
/// `void save(StateWriter&) const` and `void load(StateReader&)`. Persistent objects are not
/// values: they are written as references.
template <class T, class W, class R>
concept SelfCoded = !std::is_base_of_v<Persistent, T> && requires(const T& c, T& m, W& w, R& r) {
  c.save(w);
  m.load(r);
};

inline constexpr std::uint8_t kRecordFormat = 2;
/// The oldest record format this build reads.
inline constexpr std::uint8_t kOldestRecordFormat = 1;
/// Lists and maps nest at most this deep. Readers that walk a state without its type (skip,
/// for_each_reference, describe_record) reject deeper data with StateError, so a malicious
/// or damaged record cannot exhaust the stack or the reader's memory.
/// StateWriter enforces the same limit (UsageError at save, so at commit), so a record that
/// a writer produced is always readable.
inline constexpr std::size_t kMaxNesting = 256;
/// How deep the typed readers and writers (read/write of vectors, maps and self-coded values)
/// may recurse: bounds the call stack for recursive value types, whatever the data says.
inline constexpr std::size_t kMaxRecursion = 4 * kMaxNesting;

enum class Tag : std::uint8_t {
  none = 0x00,
  false_value = 0x01,
  true_value = 0x02,
  signed_int = 0x03,
  unsigned_int = 0x04,
  real = 0x05,
  string = 0x06,
  bytes = 0x07,
  ref = 0x08,
  xref = 0x09,
  list = 0x0a,
  map = 0x0b,
  typed_xref = 0x0c,
};

/// A cross-database reference as the object store writes it (Tag::typed_xref).
struct CrossReference {
  std::string database;
  Oid oid = 0;
  std::string type_name;
  friend bool operator==(const CrossReference&, const CrossReference&) = default;
};
std::string_view to_string(Tag tag);

/// Writes tagged values into a byte string. The connection (when there is one) is what gives
/// new objects reached through references their oids (persistence by reachability).
class StateWriter {
 public:
  explicit StateWriter(std::string& out, Connection* connection = nullptr)
      : out_(out), connection_(connection) {}

  void write_none();
  void write(bool v);
  void write(double v);
  void write(std::string_view v);
  void write(const std::string& v) { write(std::string_view(v)); }
  void write(const char* v) { write(std::string_view(v)); }
  void write_bytes(std::string_view v);
  void write_ref(Oid oid);
  /// Throws UsageError for an empty database name (it would read back as a plain reference).
  void write_xref(std::string_view database, Oid oid);
  /// A typed cross-database reference (format 2): database, oid, the target's type name.
  void write_typed_xref(const CrossReference& ref);
  template <class T>
  requires std::is_integral_v<T> &&(!std::is_same_v<T, bool>)void write(T v) {
    if constexpr (std::is_signed_v<T>) {
      write_signed(static_cast<std::int64_t>(v));
    } else {
      write_unsigned(static_cast<std::uint64_t>(v));
    }
  }
  /// Starts a list of `count` values (the caller writes them next).
  void begin_list(std::size_t count);
  /// Starts a map of `count` pairs (the caller writes key, value, key, value, ...).
  void begin_map(std::size_t count);

  template <class T>
  requires SelfCoded<T, StateWriter, StateReader>
  void write(const T& v) {
    Deeper guard(*this);
    v.save(*this);
  }
  template <class T>
  void write(const std::vector<T>& v) {
    Deeper guard(*this);
    begin_list(v.size());
    for (const auto& e : v) write(e);
  }
  template <class K, class V, class C, class A>
  void write(const std::map<K, V, C, A>& m) {
    Deeper guard(*this);
    begin_map(m.size());
    for (const auto& [k, e] : m) {
      write(k);
      write(e);
    }
  }
  template <class T>
  void write(const std::optional<T>& v) {
    if (v) {
      write(*v);
    } else {
      write_none();
    }
  }

  Connection* connection() const noexcept { return connection_; }
  std::string& buffer() noexcept { return out_; }

 private:
  // Counts the typed writers' recursion (the readers refuse what would go deeper).
  struct Deeper {
    explicit Deeper(StateWriter& w);
    ~Deeper() { --w_.depth_; }
    StateWriter& w_;
  };
  void write_signed(std::int64_t v);
  void write_unsigned(std::uint64_t v);
  /// Every value goes through here: tracks the open lists and maps as the readers do.
  void put(Tag tag);
  void open(Tag tag, std::uint64_t slots);
  std::string& out_;
  Connection* connection_;
  // Values still to come in each open list or map, counted exactly as for_each_reference
  // does, so the writer refuses precisely what the readers would refuse.
  std::vector<std::uint64_t> open_;
  std::size_t depth_ = 0;
};

/// Reads tagged values from a byte string (which must outlive the reader).
class StateReader {
 public:
  /// `what` names the record in error messages ("object 0x1f (bank.Account)").
  explicit StateReader(std::string_view in, Connection* connection = nullptr, std::string what = {})
      : in_(in), connection_(connection), what_(std::move(what)) {}

  /// The tag of the next value; throws StateError at the end of the data.
  Tag peek() const;
  bool at_end() const noexcept { return pos_ >= in_.size(); }
  /// Consumes a none value if one is next.
  bool read_none();
  bool read_bool();
  std::int64_t read_int();
  std::uint64_t read_uint();
  double read_double();
  std::string read_string();
  std::string read_bytes();
  Oid read_ref();
  /// A cross-database reference: (database, oid).
  std::pair<std::string, Oid> read_xref();
  CrossReference read_typed_xref();
  /// Starts a list; returns its element count.
  std::size_t read_list();
  /// Starts a map; returns its pair count.
  std::size_t read_map();
  /// Skips one value of any kind (nested values included).
  void skip();

  void read(bool& v) { v = read_bool(); }
  void read(double& v) { v = read_double(); }
  void read(std::string& v) { v = read_string(); }
  template <class T>
  requires std::is_integral_v<T> &&(!std::is_same_v<T, bool>)void read(T& v) {
    if constexpr (std::is_signed_v<T>) {
      v = checked_cast<T>(read_int());
    } else {
      v = checked_cast<T>(read_uint());
    }
  }
  template <class T>
  requires SelfCoded<T, StateWriter, StateReader>
  void read(T& v) {
    Deeper guard(*this);
    v.load(*this);
  }
  template <class T>
  void read(std::vector<T>& v) {
    Deeper guard(*this);
    const std::size_t n = read_list();
    v.clear();
    v.reserve(n);
    for (std::size_t i = 0; i < n; ++i) read(v.emplace_back());
  }
  template <class K, class V, class C, class A>
  void read(std::map<K, V, C, A>& m) {
    Deeper guard(*this);
    const std::size_t n = read_map();
    m.clear();
    for (std::size_t i = 0; i < n; ++i) {
      K k{};
      read(k);
      read(m[std::move(k)]);
    }
  }
  template <class T>
  void read(std::optional<T>& v) {
    if (read_none()) {
      v.reset();
    } else {
      read(v.emplace());
    }
  }
  /// Reads a value into a new T.
  template <class T>
  T get() {
    T v{};
    read(v);
    return v;
  }

  std::size_t position() const noexcept { return pos_; }
  Connection* connection() const noexcept { return connection_; }
  const std::string& what() const noexcept { return what_; }
  /// Throws StateError with `message`, the record's name and the current offset (counted from
  /// the start of the bytes the reader was given).
  [[noreturn]] void fail(std::string_view message) const;

 private:
  // Bounds the typed readers' recursion (kMaxRecursion): a record cannot exhaust the stack.
  struct Deeper {
    explicit Deeper(StateReader& r) : r_(r) {
      if (++r_.depth_ > kMaxRecursion) {
        --r_.depth_;
        r_.fail("values nested deeper than " + std::to_string(kMaxRecursion) + " levels");
      }
    }
    ~Deeper() { --r_.depth_; }
    StateReader& r_;
  };
  template <class T, class U>
  T checked_cast(U v) {
    // std::in_range refuses character types (char, char8_t, wchar_t...): check against the
    // standard integer type of the same size and signedness instead.
    using Standard =
        std::conditional_t<std::is_signed_v<T>, std::make_signed_t<T>, std::make_unsigned_t<T>>;
    if (!std::in_range<Standard>(v)) fail("integer out of range for the field it is read into");
    return static_cast<T>(v);
  }
  void expect(Tag tag);
  std::uint64_t varint();
  std::string_view take(std::size_t n);

  std::string_view in_;
  std::size_t pos_ = 0;
  Connection* connection_;
  std::string what_;
  std::size_t depth_ = 0;
};

/// What precedes the state in an object record.
struct RecordHeader {
  std::string type_name;
  std::uint32_t version = 0;
  std::size_t state_offset = 0;  ///< where the state's values start
};

/// Appends the header of an object record to `out`; the state's values follow. Throws
/// UsageError when the type name is empty or longer than 255 bytes.
void encode_header(std::string& out, std::string_view type_name, std::uint32_t version);
/// Parses a record's header; throws StateError for an unknown format or truncated header.
RecordHeader decode_header(std::string_view record);
/// The type name of a record, or empty when the header cannot be read (for messages).
std::string record_type_name(std::string_view record) noexcept;
/// Calls `fn` for every reference in the record's state (cross-database references give
/// their database name, plain ones an empty one). Throws StateError for a damaged record.
void for_each_reference(std::string_view record,
                        const std::function<void(std::string_view database, Oid oid)>& fn);
/// A one-line rendering of a record for tools: `bank.Account v2 [int 5, "x", ref 0x3]`.
/// Long strings and containers are shortened. Throws StateError for a damaged record.
std::string describe_record(std::string_view record);

}  // namespace xact::objectstore
