#include <xact/objectstore/codec.hpp>

#include <bit>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <limits>

// Doubles are stored as the same 8 little-endian bytes as every other fixed-width field.
#include <xact/io/coding.hpp>

namespace xact::objectstore {

namespace {

constexpr std::size_t kMaxTypeName = 255;
// describe_record shortens long values so one line stays readable.
constexpr std::size_t kShownStringBytes = 64;
constexpr std::size_t kShownBinaryBytes = 32;
constexpr std::size_t kShownItems = 32;

void put_tag(std::string& out, Tag tag) { out.push_back(static_cast<char>(tag)); }

// LEB128: seven bits a byte, least significant group first, high bit set on all but the last.
void put_varint(std::string& out, std::uint64_t v) {
  char buf[10];
  std::size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out.append(buf, n);
}

enum class VarintStatus { ok, truncated, too_long };

// Advances `pos` past the varint only when it decodes.
VarintStatus get_varint(std::string_view in, std::size_t& pos, std::uint64_t& v) {
  std::uint64_t result = 0;
  std::size_t i = pos;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (i >= in.size()) return VarintStatus::truncated;
    const auto b = static_cast<std::uint8_t>(in[i++]);
    // The tenth byte holds bit 63 only; anything more would be silently lost.
    if (shift == 63 && b > 1) return VarintStatus::too_long;
    result |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      pos = i;
      v = result;
      return VarintStatus::ok;
    }
  }
  return VarintStatus::too_long;
}

std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

std::int64_t unzigzag(std::uint64_t u) {
  return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
}

std::string hex_byte(unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", c);
  return buf;
}

[[noreturn]] void header_error(std::size_t offset, const std::string& message) {
  throw StateError("cannot decode record header: " + message + " at offset " +
                   std::to_string(offset));
}

// Printable ASCII stays, everything else becomes an escape, so a damaged or binary value
// cannot break the one-line output of a tool.
void append_escaped(std::string& out, std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out.push_back(ch);
        }
    }
  }
}

void append_double(std::string& out, double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Renders one value into `out`, or only checks it when `out` is null (the elided tail of a
// long container is still validated, so a damaged record is never described as sound).
void describe_value(StateReader& r, std::string* out, std::size_t depth);

void describe_items(StateReader& r, std::string* out, std::size_t count, bool pairs,
                    std::size_t depth) {
  for (std::size_t i = 0; i < count; ++i) {
    std::string* to = i < kShownItems ? out : nullptr;
    if (to && i > 0) *to += ", ";
    describe_value(r, to, depth);
    if (pairs) {
      if (to) *to += ": ";
      describe_value(r, to, depth);
    }
  }
  if (out && count > kShownItems) *out += ", ... " + std::to_string(count - kShownItems) + " more";
}

void describe_value(StateReader& r, std::string* out, std::size_t depth) {
  const Tag tag = r.peek();
  if ((tag == Tag::list || tag == Tag::map) && depth >= kMaxNesting) {
    r.fail("lists and maps nested deeper than " + std::to_string(kMaxNesting));
  }
  std::string text;
  switch (tag) {
    case Tag::none:
      r.read_none();
      text = "none";
      break;
    case Tag::false_value:
    case Tag::true_value: text = r.read_bool() ? "true" : "false"; break;
    case Tag::signed_int: text = "int " + std::to_string(r.read_int()); break;
    case Tag::unsigned_int: text = "uint " + std::to_string(r.read_uint()); break;
    case Tag::real:
      text = "double ";
      append_double(text, r.read_double());
      break;
    case Tag::string: {
      const std::string s = r.read_string();
      text = "\"";
      append_escaped(text, std::string_view(s).substr(0, kShownStringBytes));
      text += "\"";
      if (s.size() > kShownStringBytes) text += "... (" + std::to_string(s.size()) + " bytes)";
      break;
    }
    case Tag::bytes: {
      const std::string b = r.read_bytes();
      text = "bytes(" + std::to_string(b.size()) + ")";
      if (!b.empty()) text += " ";
      for (std::size_t i = 0; i < b.size() && i < kShownBinaryBytes; ++i) {
        text += hex_byte(static_cast<unsigned char>(b[i])).substr(2);
      }
      if (b.size() > kShownBinaryBytes) text += "...";
      break;
    }
    case Tag::ref: text = "ref " + oid_repr(r.read_ref()); break;
    case Tag::xref: {
      const auto [database, oid] = r.read_xref();
      text = "xref ";
      append_escaped(text, database);
      text += ":" + oid_repr(oid);
      break;
    }
    case Tag::typed_xref: {
      const CrossReference x = r.read_typed_xref();
      text = "xref ";
      append_escaped(text, x.database);
      text += ":" + oid_repr(x.oid) + " ";
      append_escaped(text, x.type_name);
      break;
    }
    case Tag::list: {
      const std::size_t n = r.read_list();
      if (out) *out += "list(" + std::to_string(n) + ")[";
      describe_items(r, out, n, false, depth + 1);
      if (out) *out += "]";
      return;
    }
    case Tag::map: {
      const std::size_t n = r.read_map();
      if (out) *out += "map(" + std::to_string(n) + "){";
      describe_items(r, out, n, true, depth + 1);
      if (out) *out += "}";
      return;
    }
  }
  if (out) *out += text;
}

std::string state_name(const RecordHeader& header) {
  std::string name = "the state of a ";
  append_escaped(name, header.type_name);
  return name + " record";
}

}  // namespace

std::string_view to_string(Tag tag) {
  switch (tag) {
    case Tag::none: return "none";
    case Tag::false_value: return "false";
    case Tag::true_value: return "true";
    case Tag::signed_int: return "signed integer";
    case Tag::unsigned_int: return "unsigned integer";
    case Tag::real: return "double";
    case Tag::string: return "string";
    case Tag::bytes: return "bytes";
    case Tag::ref: return "reference";
    case Tag::xref: return "cross-database reference";
    case Tag::typed_xref: return "typed cross-database reference";
    case Tag::list: return "list";
    case Tag::map: return "map";
  }
  return "unknown tag";
}

// ---- StateWriter ----

StateWriter::Deeper::Deeper(StateWriter& w) : w_(w) {
  if (++w_.depth_ > kMaxRecursion) {
    --w_.depth_;
    throw UsageError("a value nests more than " + std::to_string(kMaxRecursion) +
                     " levels of lists, maps and self-coded values; readers refuse deeper "
                     "data, so it cannot be stored: flatten the structure (e.g. keep a "
                     "parent reference or an index instead of nesting)");
  }
}

void StateWriter::put(Tag tag) {
  while (!open_.empty() && open_.back() == 0) open_.pop_back();
  if (!open_.empty()) --open_.back();
  put_tag(out_, tag);
}

void StateWriter::open(Tag tag, std::uint64_t slots) {
  while (!open_.empty() && open_.back() == 0) open_.pop_back();
  if (open_.size() >= kMaxNesting) {
    throw UsageError("lists and maps nested deeper than " + std::to_string(kMaxNesting) +
                     " levels cannot be stored: readers (verify, pack, load) refuse them. "
                     "Flatten the structure (e.g. keep references to separate objects "
                     "instead of nesting)");
  }
  put(tag);
  open_.push_back(slots);
}

void StateWriter::write_none() { put(Tag::none); }

void StateWriter::write(bool v) { put(v ? Tag::true_value : Tag::false_value); }

void StateWriter::write(double v) {
  put(Tag::real);
  io::coding::put_u64(out_, std::bit_cast<std::uint64_t>(v));
}

void StateWriter::write(std::string_view v) {
  put(Tag::string);
  put_varint(out_, v.size());
  out_.append(v);
}

void StateWriter::write_bytes(std::string_view v) {
  put(Tag::bytes);
  put_varint(out_, v.size());
  out_.append(v);
}

void StateWriter::write_ref(Oid oid) {
  put(Tag::ref);
  put_varint(out_, oid);
}

void StateWriter::write_xref(std::string_view database, Oid oid) {
  if (database.empty()) {
    throw UsageError(
        "a cross-database reference needs the database's name; use write_ref() for an object "
        "of the same database");
  }
  put(Tag::xref);
  put_varint(out_, database.size());
  out_.append(database);
  put_varint(out_, oid);
}

void StateWriter::write_typed_xref(const CrossReference& ref) {
  if (ref.database.empty() || ref.type_name.empty()) {
    throw UsageError(
        "a cross-database reference needs the database's name and the target's type name");
  }
  put(Tag::typed_xref);
  put_varint(out_, ref.database.size());
  out_.append(ref.database);
  put_varint(out_, ref.oid);
  put_varint(out_, ref.type_name.size());
  out_.append(ref.type_name);
}

void StateWriter::begin_list(std::size_t count) {
  open(Tag::list, count);
  put_varint(out_, count);
}

void StateWriter::begin_map(std::size_t count) {
  open(Tag::map, std::uint64_t{2} * count);
  put_varint(out_, count);
}

void StateWriter::write_signed(std::int64_t v) {
  put(Tag::signed_int);
  put_varint(out_, zigzag(v));
}

void StateWriter::write_unsigned(std::uint64_t v) {
  put(Tag::unsigned_int);
  put_varint(out_, v);
}

// ---- StateReader ----

void StateReader::fail(std::string_view message) const {
  throw StateError("cannot decode " + (what_.empty() ? std::string("state") : what_) + ": " +
                   std::string(message) + " at offset " + std::to_string(pos_));
}

Tag StateReader::peek() const {
  if (at_end()) fail("expected a value, found the end of the data");
  const auto b = static_cast<unsigned char>(in_[pos_]);
  if (b > static_cast<unsigned char>(Tag::typed_xref)) fail("unknown value tag " + hex_byte(b));
  return static_cast<Tag>(b);
}

void StateReader::expect(Tag tag) {
  const Tag found = peek();
  if (found != tag) {
    fail("expected " + std::string(to_string(tag)) + ", found " + std::string(to_string(found)));
  }
  ++pos_;
}

std::uint64_t StateReader::varint() {
  std::uint64_t v = 0;
  switch (get_varint(in_, pos_, v)) {
    case VarintStatus::ok: return v;
    case VarintStatus::truncated: fail("varint runs past the end of the data");
    case VarintStatus::too_long: fail("varint longer than 64 bits");
  }
  fail("varint cannot be decoded");
}

std::string_view StateReader::take(std::size_t n) {
  const std::size_t left = in_.size() - pos_;
  if (n > left) {
    fail("length " + std::to_string(n) + " exceeds the " + std::to_string(left) + " bytes left");
  }
  const std::string_view v = in_.substr(pos_, n);
  pos_ += n;
  return v;
}

bool StateReader::read_none() {
  if (at_end() || static_cast<unsigned char>(in_[pos_]) != static_cast<unsigned char>(Tag::none)) {
    return false;
  }
  ++pos_;
  return true;
}

bool StateReader::read_bool() {
  const Tag tag = peek();
  if (tag != Tag::false_value && tag != Tag::true_value) {
    fail("expected bool, found " + std::string(to_string(tag)));
  }
  ++pos_;
  return tag == Tag::true_value;
}

std::int64_t StateReader::read_int() {
  const Tag tag = peek();
  if (tag == Tag::signed_int) {
    ++pos_;
    return unzigzag(varint());
  }
  if (tag == Tag::unsigned_int) {
    const std::size_t start = pos_;
    ++pos_;
    const std::uint64_t u = varint();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      pos_ = start;
      fail("unsigned integer " + std::to_string(u) + " out of range for a signed integer");
    }
    return static_cast<std::int64_t>(u);
  }
  fail("expected an integer, found " + std::string(to_string(tag)));
}

std::uint64_t StateReader::read_uint() {
  const Tag tag = peek();
  if (tag == Tag::unsigned_int) {
    ++pos_;
    return varint();
  }
  if (tag == Tag::signed_int) {
    const std::size_t start = pos_;
    ++pos_;
    const std::int64_t v = unzigzag(varint());
    if (v < 0) {
      pos_ = start;
      fail("negative integer " + std::to_string(v) + " out of range for an unsigned integer");
    }
    return static_cast<std::uint64_t>(v);
  }
  fail("expected an integer, found " + std::string(to_string(tag)));
}

double StateReader::read_double() {
  expect(Tag::real);
  return std::bit_cast<double>(io::coding::load_u64(take(8).data()));
}

std::string StateReader::read_string() {
  expect(Tag::string);
  return std::string(take(varint()));
}

std::string StateReader::read_bytes() {
  expect(Tag::bytes);
  return std::string(take(varint()));
}

Oid StateReader::read_ref() {
  expect(Tag::ref);
  return varint();
}

std::pair<std::string, Oid> StateReader::read_xref() {
  expect(Tag::xref);
  const std::string_view database = take(varint());
  if (database.empty()) fail("cross-database reference with an empty database name");
  const Oid oid = varint();
  return {std::string(database), oid};
}

CrossReference StateReader::read_typed_xref() {
  expect(Tag::typed_xref);
  CrossReference x;
  x.database = std::string(take(varint()));
  if (x.database.empty()) fail("cross-database reference with an empty database name");
  x.oid = varint();
  x.type_name = std::string(take(varint()));
  if (x.type_name.empty()) fail("cross-database reference with an empty type name");
  return x;
}

std::size_t StateReader::read_list() {
  expect(Tag::list);
  const std::uint64_t n = varint();
  // Every value takes at least one byte: a larger count is damage, and checking it here
  // keeps a caller's reserve(n) from allocating for it.
  if (n > in_.size() - pos_) {
    fail("list of " + std::to_string(n) + " values exceeds the " +
         std::to_string(in_.size() - pos_) + " bytes left");
  }
  return static_cast<std::size_t>(n);
}

std::size_t StateReader::read_map() {
  expect(Tag::map);
  const std::uint64_t n = varint();
  // Every pair takes at least two bytes.
  if (n > (in_.size() - pos_) / 2) {
    fail("map of " + std::to_string(n) + " pairs exceeds the " + std::to_string(in_.size() - pos_) +
         " bytes left");
  }
  return static_cast<std::size_t>(n);
}

void StateReader::skip() {
  // Values still to skip in each open list or map. Iterative, so the nesting limit rather
  // than the call stack bounds what a record can ask for.
  std::vector<std::uint64_t> left{1};
  while (!left.empty()) {
    if (left.back() == 0) {
      left.pop_back();
      continue;
    }
    --left.back();
    switch (peek()) {
      case Tag::none:
      case Tag::false_value:
      case Tag::true_value: ++pos_; break;
      case Tag::signed_int:
      case Tag::unsigned_int:
      case Tag::ref:
        ++pos_;
        varint();
        break;
      case Tag::real:
        ++pos_;
        take(8);
        break;
      case Tag::string:
      case Tag::bytes:
        ++pos_;
        take(varint());
        break;
      case Tag::xref: read_xref(); break;
      case Tag::typed_xref: read_typed_xref(); break;
      case Tag::list:
      case Tag::map:
        if (left.size() > kMaxNesting) {
          fail("lists and maps nested deeper than " + std::to_string(kMaxNesting));
        }
        if (peek() == Tag::list) {
          left.push_back(read_list());
        } else {
          left.push_back(std::uint64_t{2} * read_map());
        }
        break;
    }
  }
}

// ---- records ----

void encode_header(std::string& out, std::string_view type_name, std::uint32_t version) {
  if (type_name.empty() || type_name.size() > kMaxTypeName) {
    throw UsageError("type name \"" + std::string(type_name.substr(0, 80)) + "\" has " +
                     std::to_string(type_name.size()) +
                     " bytes; a stored type name has 1 to 255 bytes: register the type under "
                     "a shorter name");
  }
  out.push_back(static_cast<char>(kRecordFormat));
  put_varint(out, type_name.size());
  out.append(type_name);
  put_varint(out, version);
}

RecordHeader decode_header(std::string_view record) {
  if (record.empty()) header_error(0, "empty record (no format byte)");
  const auto format = static_cast<unsigned char>(record[0]);
  if (format < kOldestRecordFormat || format > kRecordFormat) {
    header_error(0, "unknown record format " + hex_byte(format) + " (this build reads format " +
                        std::to_string(kRecordFormat) + ")");
  }
  std::size_t pos = 1;
  std::uint64_t length = 0;
  if (get_varint(record, pos, length) != VarintStatus::ok) {
    header_error(pos, "type name length cannot be read");
  }
  if (length == 0 || length > kMaxTypeName) {
    header_error(pos, "type name length " + std::to_string(length) + " is not within 1..255");
  }
  if (length > record.size() - pos) {
    header_error(pos, "type name of " + std::to_string(length) + " bytes exceeds the " +
                          std::to_string(record.size() - pos) + " bytes left");
  }
  RecordHeader header;
  header.type_name = std::string(record.substr(pos, length));
  pos += length;
  std::uint64_t version = 0;
  if (get_varint(record, pos, version) != VarintStatus::ok) {
    header_error(pos, "state version cannot be read");
  }
  if (version > std::numeric_limits<std::uint32_t>::max()) {
    header_error(pos, "state version " + std::to_string(version) + " does not fit 32 bits");
  }
  header.version = static_cast<std::uint32_t>(version);
  header.state_offset = pos;
  return header;
}

std::string record_type_name(std::string_view record) noexcept {
  try {
    return decode_header(record).type_name;
  } catch (...) {
    return {};
  }
}

void for_each_reference(std::string_view record,
                        const std::function<void(std::string_view database, Oid oid)>& fn) {
  const RecordHeader header = decode_header(record);
  StateReader r(record.substr(header.state_offset), nullptr, state_name(header));
  // Values left in each open list or map; the top level runs to the end of the record.
  std::vector<std::uint64_t> left;
  while (!left.empty() || !r.at_end()) {
    if (!left.empty()) {
      if (left.back() == 0) {
        left.pop_back();
        continue;
      }
      --left.back();
    }
    switch (r.peek()) {
      case Tag::ref: fn({}, r.read_ref()); break;
      case Tag::xref: {
        const auto [database, oid] = r.read_xref();
        fn(database, oid);
        break;
      }
      case Tag::typed_xref: {
        const CrossReference x = r.read_typed_xref();
        fn(x.database, x.oid);
        break;
      }
      case Tag::list:
      case Tag::map:
        if (left.size() >= kMaxNesting) {
          r.fail("lists and maps nested deeper than " + std::to_string(kMaxNesting));
        }
        if (r.peek() == Tag::list) {
          left.push_back(r.read_list());
        } else {
          left.push_back(std::uint64_t{2} * r.read_map());
        }
        break;
      default: r.skip();
    }
  }
}

std::string describe_record(std::string_view record) {
  const RecordHeader header = decode_header(record);
  StateReader r(record.substr(header.state_offset), nullptr, state_name(header));
  std::string out;
  append_escaped(out, header.type_name);
  out += " v" + std::to_string(header.version) + " [";
  std::size_t count = 0;
  for (; !r.at_end(); ++count) {
    std::string* to = count < kShownItems ? &out : nullptr;
    if (to && count > 0) out += ", ";
    describe_value(r, to, 0);
  }
  if (count > kShownItems) out += ", ... " + std::to_string(count - kShownItems) + " more";
  out += "]";
  return out;
}

}  // namespace xact::objectstore
