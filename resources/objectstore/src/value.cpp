#include <xact/objectstore/value.hpp>

#include <xact/errors.hpp>

namespace xact::objectstore {

std::string_view to_string(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::none: return "none";
    case Value::Kind::boolean: return "bool";
    case Value::Kind::integer: return "integer";
    case Value::Kind::unsigned_integer: return "unsigned integer";
    case Value::Kind::real: return "double";
    case Value::Kind::string: return "string";
    case Value::Kind::bytes: return "bytes";
    case Value::Kind::ref: return "reference";
    case Value::Kind::list: return "list";
    case Value::Kind::map: return "map";
  }
  return "?";
}

void Value::wrong_kind(Kind wanted) const {
  throw UsageError("value is a " + std::string(to_string(kind())) + ", not a " +
                   std::string(to_string(wanted)));
}

bool Value::as_bool() const {
  if (auto* v = std::get_if<bool>(&v_)) return *v;
  wrong_kind(Kind::boolean);
}

std::int64_t Value::as_int() const {
  if (auto* v = std::get_if<std::int64_t>(&v_)) return *v;
  if (auto* u = std::get_if<std::uint64_t>(&v_)) {
    if (std::in_range<std::int64_t>(*u)) return static_cast<std::int64_t>(*u);
    throw UsageError("unsigned value " + std::to_string(*u) + " does not fit a signed integer");
  }
  wrong_kind(Kind::integer);
}

double Value::as_double() const {
  if (auto* v = std::get_if<double>(&v_)) return *v;
  wrong_kind(Kind::real);
}

const std::string& Value::as_string() const {
  if (auto* v = std::get_if<std::string>(&v_)) return *v;
  wrong_kind(Kind::string);
}

const Bytes& Value::as_bytes() const {
  if (auto* v = std::get_if<Bytes>(&v_)) return *v;
  wrong_kind(Kind::bytes);
}

const Ref<Persistent>& Value::as_ref() const {
  if (auto* v = std::get_if<Ref<Persistent>>(&v_)) return *v;
  wrong_kind(Kind::ref);
}

const Value::List& Value::as_list() const {
  if (auto* v = std::get_if<List>(&v_)) return *v;
  wrong_kind(Kind::list);
}

Value::List& Value::as_list() {
  if (auto* v = std::get_if<List>(&v_)) return *v;
  wrong_kind(Kind::list);
}

const Value::Map& Value::as_map() const {
  if (auto* v = std::get_if<Map>(&v_)) return *v;
  wrong_kind(Kind::map);
}

Value::Map& Value::as_map() {
  if (auto* v = std::get_if<Map>(&v_)) return *v;
  wrong_kind(Kind::map);
}

void Value::save(StateWriter& out) const {
  switch (kind()) {
    case Kind::none: out.write_none(); break;
    case Kind::boolean: out.write(std::get<bool>(v_)); break;
    case Kind::integer: out.write(std::get<std::int64_t>(v_)); break;
    case Kind::unsigned_integer: out.write(std::get<std::uint64_t>(v_)); break;
    case Kind::real: out.write(std::get<double>(v_)); break;
    case Kind::string: out.write(std::get<std::string>(v_)); break;
    case Kind::bytes: out.write_bytes(std::get<Bytes>(v_).data); break;
    case Kind::ref: std::get<Ref<Persistent>>(v_).save(out); break;
    case Kind::list: {
      const auto& l = std::get<List>(v_);
      out.begin_list(l.size());
      for (const auto& e : l) e.save(out);
      break;
    }
    case Kind::map: {
      const auto& m = std::get<Map>(v_);
      out.begin_map(m.size());
      for (const auto& [k, e] : m) {
        k.save(out);
        e.save(out);
      }
      break;
    }
  }
}

void Value::load(StateReader& in) {
  switch (in.peek()) {
    case Tag::none: in.read_none(); v_ = std::monostate{}; break;
    case Tag::false_value:
    case Tag::true_value: v_ = in.read_bool(); break;
    case Tag::signed_int: v_ = in.read_int(); break;
    case Tag::unsigned_int: v_ = in.read_uint(); break;
    case Tag::real: v_ = in.read_double(); break;
    case Tag::string: v_ = in.read_string(); break;
    case Tag::bytes: v_ = Bytes{in.read_bytes()}; break;
    case Tag::ref:
    case Tag::xref:
    case Tag::typed_xref: {  // Ref::load reads all three (a cross-database one resolves lazily)
      Ref<Persistent> r;
      r.load(in);
      v_ = std::move(r);
      break;
    }
    case Tag::list: {
      const std::size_t n = in.read_list();
      List l;
      l.reserve(n);
      for (std::size_t i = 0; i < n; ++i) l.emplace_back().load(in);
      v_ = std::move(l);
      break;
    }
    case Tag::map: {
      const std::size_t n = in.read_map();
      Map m;
      m.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        auto& [k, e] = m.emplace_back();
        k.load(in);
        e.load(in);
      }
      v_ = std::move(m);
      break;
    }
    default: in.fail("unknown value tag");
  }
}

bool operator==(const Value& a, const Value& b) { return a.v_ == b.v_; }

}  // namespace xact::objectstore
