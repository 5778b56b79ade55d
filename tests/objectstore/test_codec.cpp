// The object store's codec (values, record headers, walks without the type), ids and errors.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <xact/errors.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/errors.hpp>
#include <xact/objectstore/types.hpp>

namespace xact::objectstore {
namespace {

using namespace std::string_literals;

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    if (!out.empty()) out += ' ';
    out += digits[static_cast<unsigned char>(c) >> 4];
    out += digits[static_cast<unsigned char>(c) & 0xf];
  }
  return out;
}

template <class Fn>
std::string state_of(Fn&& fn) {
  std::string out;
  StateWriter w(out);
  fn(w);
  return out;
}

template <class Fn>
std::string record_of(Fn&& fn, std::string_view type = "bank.Account", std::uint32_t version = 2) {
  std::string out;
  encode_header(out, type, version);
  StateWriter w(out);
  fn(w);
  return out;
}

template <class T>
T round_trip(const T& v) {
  std::string out;
  StateWriter w(out);
  w.write(v);
  StateReader r(out);
  T back = r.get<T>();
  EXPECT_TRUE(r.at_end());
  return back;
}

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const StateError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no StateError";
  return {};
}

// A record of every kind of value, all inside one top-level list so that any truncation of
// the state leaves a list short of values.
std::string sample_record() {
  return record_of([](StateWriter& w) {
    w.begin_list(12);
    w.write_none();
    w.write(true);
    w.write(std::int64_t{-123456789});
    w.write(std::uint64_t{300});
    w.write(2.5);
    w.write("héllo"s);
    w.write_bytes("\x00\x01\xff"s);
    w.write_ref(0x1f);
    w.write_xref("catalog", 0x2a);
    w.write(std::vector<std::int32_t>{1, -2, 3});
    w.write(std::map<std::string, std::uint16_t>{{"a", 1}, {"b", 2}});
    w.write(std::optional<std::string>{});
  });
}

void read_sample_state(StateReader& r) {
  ASSERT_EQ(r.read_list(), 12u);
  EXPECT_TRUE(r.read_none());
  EXPECT_TRUE(r.read_bool());
  EXPECT_EQ(r.read_int(), -123456789);
  EXPECT_EQ(r.read_uint(), 300u);
  EXPECT_EQ(r.read_double(), 2.5);
  EXPECT_EQ(r.read_string(), "héllo");
  EXPECT_EQ(r.read_bytes(), "\x00\x01\xff"s);
  EXPECT_EQ(r.read_ref(), 0x1fu);
  EXPECT_EQ(r.read_xref(), (std::pair<std::string, Oid>{"catalog", 0x2a}));
  EXPECT_EQ(r.get<std::vector<std::int32_t>>(), (std::vector<std::int32_t>{1, -2, 3}));
  EXPECT_EQ((r.get<std::map<std::string, std::uint16_t>>()),
            (std::map<std::string, std::uint16_t>{{"a", 1}, {"b", 2}}));
  EXPECT_EQ(r.get<std::optional<std::string>>(), std::nullopt);
  EXPECT_TRUE(r.at_end());
}

// ---- encoding, byte by byte (the examples of doc/objectstore_format.md) ----

TEST(CodecFormat, RecordBytesAreExactlyTheDocumentedOnes) {
  const std::string record = record_of([](StateWriter& w) {
    w.write(5);
    w.write("x");
    w.write_ref(3);
  });
  EXPECT_EQ(hex(record), "02 0c 62 61 6e 6b 2e 41 63 63 6f 75 6e 74 02 03 0a 06 01 78 08 03");
}

// Rule: format 2's typed cross-database reference (tag 0x0c) carries database, oid and the
// target's type name; format 1 records (the same bytes with format byte 01) are still read.
TEST(CodecFormat, TypedCrossReferenceBytesAndFormatOneRecordsStillRead) {
  const std::string record = record_of([](StateWriter& w) {
    w.write_typed_xref(CrossReference{"db", 5, "t.T"});
  });
  EXPECT_EQ(hex(record),
            "02 0c 62 61 6e 6b 2e 41 63 63 6f 75 6e 74 02 0c 02 64 62 05 03 74 2e 54");
  const RecordHeader h = decode_header(record);
  StateReader r(std::string_view(record).substr(h.state_offset));
  EXPECT_EQ(r.read_typed_xref(), (CrossReference{"db", 5, "t.T"}));
  std::vector<std::pair<std::string, Oid>> refs;
  for_each_reference(record, [&](std::string_view d, Oid o) { refs.emplace_back(d, o); });
  EXPECT_EQ(refs, (std::vector<std::pair<std::string, Oid>>{{"db", 5}}));
  EXPECT_NE(describe_record(record).find("xref db:0x5 t.T"), std::string::npos)
      << describe_record(record);
  std::string old = record_of([](StateWriter& w) { w.write_ref(3); });
  old[0] = 1;
  EXPECT_EQ(decode_header(old).type_name, "bank.Account");
}

TEST(CodecFormat, SignedIntegersAreZigzagVarints) {
  EXPECT_EQ(hex(state_of([](StateWriter& w) { w.write(0); })), "03 00");
  EXPECT_EQ(hex(state_of([](StateWriter& w) { w.write(-1); })), "03 01");
  EXPECT_EQ(hex(state_of([](StateWriter& w) { w.write(1); })), "03 02");
  EXPECT_EQ(hex(state_of([](StateWriter& w) { w.write(-65); })), "03 81 01");
  EXPECT_EQ(
      hex(state_of([](StateWriter& w) { w.write(std::numeric_limits<std::int64_t>::min()); })),
      "03 ff ff ff ff ff ff ff ff ff 01");
}

TEST(CodecFormat, UnsignedIntegersAreLeb128Varints) {
  EXPECT_EQ(hex(state_of([](StateWriter& w) { w.write(300u); })), "04 ac 02");
  EXPECT_EQ(
      hex(state_of([](StateWriter& w) { w.write(std::numeric_limits<std::uint64_t>::max()); })),
      "04 ff ff ff ff ff ff ff ff ff 01");
}

TEST(CodecFormat, DoublesAreEightLittleEndianBytes) {
  EXPECT_EQ(hex(state_of([](StateWriter& w) { w.write(1.0); })), "05 00 00 00 00 00 00 f0 3f");
}

TEST(CodecFormat, ContainersAreCountThenValues) {
  EXPECT_EQ(hex(state_of([](StateWriter& w) {
              w.write(std::map<std::string, bool>{{"k", false}});
              w.write(std::vector<std::uint8_t>{});
              w.write_xref("db", 7);
            })),
            "0b 01 06 01 6b 01 0a 00 09 02 64 62 07");
}

// ---- round trips ----

TEST(CodecRoundTrip, EveryScalarKindReadsBackAsWritten) {
  const std::string state = state_of([](StateWriter& w) {
    w.write_none();
    w.write(false);
    w.write(true);
    w.write(std::numeric_limits<std::int64_t>::min());
    w.write(std::numeric_limits<std::int64_t>::max());
    w.write(std::int64_t{0});
    w.write(std::numeric_limits<std::uint64_t>::max());
    w.write(""s);
    w.write("a\0b\0"s);
    w.write_bytes(""s);
    w.write_bytes("\x00\xff\x00\x80"s);
    w.write_ref(0);
    w.write_ref(std::numeric_limits<Oid>::max());
    w.write_xref("other", 0x42);
  });
  StateReader r(state);
  EXPECT_TRUE(r.read_none());
  EXPECT_FALSE(r.read_bool());
  EXPECT_TRUE(r.read_bool());
  EXPECT_EQ(r.read_int(), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(r.read_int(), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(r.read_int(), 0);
  EXPECT_EQ(r.read_uint(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(r.read_string(), "");
  EXPECT_EQ(r.read_string(), "a\0b\0"s);
  EXPECT_EQ(r.read_bytes(), "");
  EXPECT_EQ(r.read_bytes(), "\x00\xff\x00\x80"s);
  EXPECT_EQ(r.read_ref(), 0u);
  EXPECT_EQ(r.read_ref(), std::numeric_limits<Oid>::max());
  EXPECT_EQ(r.read_xref(), (std::pair<std::string, Oid>{"other", 0x42}));
  EXPECT_TRUE(r.at_end());
}

TEST(CodecRoundTrip, DoublesKeepEveryBitIncludingNegativeZeroNanAndInfinity) {
  const double values[] = {0.0,
                           -0.0,
                           0.1,
                           -1e308,
                           std::numeric_limits<double>::denorm_min(),
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::quiet_NaN(),
                           -std::numeric_limits<double>::quiet_NaN()};
  for (const double v : values) {
    const double back = round_trip(v);
    std::uint64_t a = 0, b = 0;
    std::memcpy(&a, &v, sizeof v);
    std::memcpy(&b, &back, sizeof back);
    EXPECT_EQ(a, b) << v;
  }
  EXPECT_TRUE(std::signbit(round_trip(-0.0)));
  EXPECT_TRUE(std::isnan(round_trip(std::numeric_limits<double>::quiet_NaN())));
}

TEST(CodecRoundTrip, IntegersOfEveryWidthReadBackAsWritten) {
  EXPECT_EQ(round_trip(std::numeric_limits<std::int8_t>::min()),
            std::numeric_limits<std::int8_t>::min());
  EXPECT_EQ(round_trip(std::numeric_limits<std::uint8_t>::max()),
            std::numeric_limits<std::uint8_t>::max());
  EXPECT_EQ(round_trip(std::numeric_limits<std::int16_t>::min()),
            std::numeric_limits<std::int16_t>::min());
  EXPECT_EQ(round_trip(std::numeric_limits<std::uint16_t>::max()),
            std::numeric_limits<std::uint16_t>::max());
  EXPECT_EQ(round_trip(std::numeric_limits<std::int32_t>::min()),
            std::numeric_limits<std::int32_t>::min());
  EXPECT_EQ(round_trip(std::numeric_limits<std::uint32_t>::max()),
            std::numeric_limits<std::uint32_t>::max());
  EXPECT_EQ(round_trip(std::numeric_limits<std::int64_t>::min()),
            std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(round_trip(std::numeric_limits<std::uint64_t>::max()),
            std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(round_trip('x'), 'x');
}

TEST(CodecRoundTrip, NestedListsAndMapsReadBackAsWritten) {
  const std::string state = state_of([](StateWriter& w) {
    w.begin_list(3);
    w.begin_list(0);
    w.begin_map(2);
    w.write("k");
    w.begin_list(1);
    w.write_ref(9);
    w.write(7);
    w.write_none();
    w.write(1.5);
  });
  StateReader r(state);
  ASSERT_EQ(r.read_list(), 3u);
  EXPECT_EQ(r.read_list(), 0u);
  ASSERT_EQ(r.read_map(), 2u);
  EXPECT_EQ(r.read_string(), "k");
  ASSERT_EQ(r.read_list(), 1u);
  EXPECT_EQ(r.read_ref(), 9u);
  EXPECT_EQ(r.read_int(), 7);
  EXPECT_TRUE(r.read_none());
  EXPECT_EQ(r.read_double(), 1.5);
  EXPECT_TRUE(r.at_end());
}

TEST(CodecRoundTrip, StandardContainersReadBackAsWritten) {
  const std::vector<std::string> strings{"", "a", "\0\0"s};
  EXPECT_EQ(round_trip(strings), strings);
  EXPECT_EQ(round_trip(std::vector<std::int64_t>{}), std::vector<std::int64_t>{});
  const std::map<std::string, std::vector<std::uint64_t>> m{{"x", {1, 2}}, {"y", {}}};
  EXPECT_EQ(round_trip(m), m);
  const std::map<std::int32_t, std::optional<double>> sparse{{-1, std::nullopt}, {4, 0.5}};
  EXPECT_EQ(round_trip(sparse), sparse);
  EXPECT_EQ(round_trip(std::optional<std::string>{"v"}), std::optional<std::string>{"v"});
  EXPECT_EQ(round_trip(std::optional<std::string>{}), std::nullopt);
  const std::vector<std::vector<std::int16_t>> nested{{1}, {}, {-3, 4}};
  EXPECT_EQ(round_trip(nested), nested);
}

TEST(CodecRoundTrip, SampleRecordOfEveryKindReadsBack) {
  const std::string record = sample_record();
  const RecordHeader header = decode_header(record);
  StateReader r(std::string_view(record).substr(header.state_offset));
  read_sample_state(r);
}

TEST(CodecRoundTrip, SkipPassesOverOneValueOfAnyKind) {
  const std::string record = sample_record();
  const RecordHeader header = decode_header(record);
  StateReader r(std::string_view(record).substr(header.state_offset));
  ASSERT_EQ(r.read_list(), 12u);
  for (int i = 0; i < 12; ++i) r.skip();
  EXPECT_TRUE(r.at_end());

  StateReader whole(std::string_view(record).substr(header.state_offset));
  whole.skip();
  EXPECT_TRUE(whole.at_end());
}

// ---- kinds and ranges ----

TEST(CodecErrors, IntegerOutOfRangeForTheTargetTypeIsStateError) {
  const std::string big = state_of([](StateWriter& w) { w.write(300); });
  StateReader r(big);
  std::uint8_t small = 0;
  EXPECT_THROW(r.read(small), StateError);

  const std::string negative = state_of([](StateWriter& w) { w.write(-1); });
  StateReader r2(negative);
  EXPECT_THROW(r2.get<std::uint32_t>(), StateError);

  const std::string min =
      state_of([](StateWriter& w) { w.write(std::numeric_limits<std::int64_t>::min()); });
  StateReader r3(min);
  EXPECT_THROW(r3.get<std::int32_t>(), StateError);

  StateReader r5(big);
  EXPECT_THROW(r5.get<char>(), StateError);  // character types are range-checked too
  StateReader r6(negative);
  EXPECT_THROW(r6.get<char8_t>(), StateError);

  const std::string huge =
      state_of([](StateWriter& w) { w.write(std::numeric_limits<std::uint64_t>::max()); });
  StateReader r4(huge);
  EXPECT_THROW(r4.read_int(), StateError);
}

TEST(CodecErrors, IntegerTagsAreInterchangeableWhenTheValueFits) {
  const std::string state = state_of([](StateWriter& w) {
    w.write(5u);
    w.write(7);
  });
  StateReader r(state);
  EXPECT_EQ(r.read_int(), 5);
  EXPECT_EQ(r.read_uint(), 7u);
}

TEST(CodecErrors, WrongKindNamesExpectedAndFoundKindAndOffset) {
  const std::string state = state_of([](StateWriter& w) {
    w.write(5);
    w.write("five");
  });
  StateReader r(state, nullptr, "object 0x1f (bank.Account)");
  r.read_int();
  const std::string m = message_of([&] { r.read_int(); });
  EXPECT_NE(m.find("object 0x1f (bank.Account)"), std::string::npos) << m;
  EXPECT_NE(m.find("expected an integer, found string"), std::string::npos) << m;
  EXPECT_NE(m.find("offset 2"), std::string::npos) << m;

  StateReader r2(state);
  const std::string m2 = message_of([&] { r2.read_string(); });
  EXPECT_NE(m2.find("expected string, found signed integer at offset 0"), std::string::npos) << m2;
  const std::string m3 = message_of([&] { StateReader(state).read_bool(); });
  EXPECT_NE(m3.find("expected bool, found signed integer"), std::string::npos) << m3;
}

TEST(CodecErrors, ReadingPastTheEndIsStateError) {
  StateReader r("");
  EXPECT_TRUE(r.at_end());
  EXPECT_FALSE(r.read_none());
  EXPECT_THROW(r.peek(), StateError);
  EXPECT_THROW(r.read_int(), StateError);
  EXPECT_THROW(r.skip(), StateError);
  EXPECT_THROW(r.get<std::optional<int>>(), StateError);
}

TEST(CodecErrors, UnknownTagIsStateError) {
  const std::string m = message_of([] { StateReader("\x0d"s).skip(); });
  EXPECT_NE(m.find("unknown value tag 0x0d"), std::string::npos) << m;
  EXPECT_THROW(StateReader("\xff"s).peek(), StateError);
}

TEST(CodecErrors, EmptyDatabaseNameOfACrossDatabaseReferenceIsRejected) {
  std::string out;
  StateWriter w(out);
  EXPECT_THROW(w.write_xref("", 1), UsageError);
  EXPECT_THROW(StateReader("\x09\x00\x01"s).read_xref(), StateError);
}

TEST(CodecErrors, TruncationAtEveryByteIsStateErrorNeverACrash) {
  const std::string record = sample_record();
  const std::size_t state_offset = decode_header(record).state_offset;
  for (std::size_t cut = 0; cut < record.size(); ++cut) {
    const std::string_view prefix = std::string_view(record).substr(0, cut);
    SCOPED_TRACE("cut at " + std::to_string(cut));
    if (cut < state_offset) {
      EXPECT_THROW(decode_header(prefix), StateError);
      EXPECT_EQ(record_type_name(prefix), "");
      continue;
    }
    // The typed reader finds the state short of values...
    const auto read_typed = [&] {
      StateReader r(prefix.substr(state_offset));
      r.read_list();
      r.read_none();
      r.read_bool();
      r.read_int();
      r.read_uint();
      r.read_double();
      r.read_string();
      r.read_bytes();
      r.read_ref();
      r.read_xref();
      r.get<std::vector<std::int32_t>>();
      r.get<std::map<std::string, std::uint16_t>>();
      r.get<std::optional<std::string>>();
    };
    EXPECT_THROW(read_typed(), StateError);
    if (cut == state_offset) continue;  // an empty state is a valid state
    // ... and so do the walks that do not know the type.
    EXPECT_THROW(for_each_reference(prefix, [](std::string_view, Oid) {}), StateError);
    EXPECT_THROW(describe_record(prefix), StateError);
    EXPECT_THROW(StateReader(prefix.substr(state_offset)).skip(), StateError);
  }
}

TEST(CodecErrors, HugeDeclaredLengthIsStateErrorWithoutAllocating) {
  std::string s = "\x06"s;  // string of 2^62 bytes
  s += "\x80\x80\x80\x80\x80\x80\x80\x80\x40"s;
  s += "abc";
  const std::string m = message_of([&] { StateReader(s).read_string(); });
  EXPECT_NE(m.find("exceeds the 3 bytes left"), std::string::npos) << m;
  s[0] = 0x07;
  EXPECT_THROW(StateReader(s).read_bytes(), StateError);
  EXPECT_THROW(StateReader(s).skip(), StateError);

  // A count the bytes cannot hold is rejected before the vector reserves for it.
  std::string list = "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x00"s;
  EXPECT_THROW(StateReader(list).get<std::vector<std::string>>(), StateError);
  EXPECT_THROW(StateReader(list).skip(), StateError);
  std::string two = "\x0a\x02\x00"s;  // two values declared, one byte left
  EXPECT_THROW(StateReader(two).read_list(), StateError);
  std::string map = "\x0b\x02\x00\x00\x00"s;  // two pairs need at least four bytes
  EXPECT_THROW(StateReader(map).read_map(), StateError);
  std::string xref = "\x09\xff\xff\xff\xff\x0f"s;
  EXPECT_THROW(StateReader(xref).read_xref(), StateError);

  std::string record;
  encode_header(record, "t", 1);
  EXPECT_THROW(for_each_reference(record + list, [](std::string_view, Oid) {}), StateError);
  EXPECT_THROW(describe_record(record + list), StateError);
}

TEST(CodecErrors, VarintLongerThan64BitsIsStateError) {
  EXPECT_THROW(StateReader("\x04\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"s).read_uint(),
               StateError);
  EXPECT_THROW(StateReader("\x04\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"s).read_uint(),
               StateError);
  EXPECT_THROW(StateReader("\x04\x80"s).read_uint(), StateError);
}

std::string nested_lists(std::size_t depth) {
  std::string s;
  for (std::size_t i = 0; i < depth; ++i) s += "\x0a\x01"s;
  s += "\x08\x05"s;  // a reference at the bottom
  return s;
}

TEST(CodecErrors, NestingUpToTheLimitIsReadAndDeeperIsStateError) {
  std::string header;
  encode_header(header, "t", 0);
  {
    const std::string ok = nested_lists(kMaxNesting);
    StateReader r(ok);
    EXPECT_NO_THROW(r.skip());
    EXPECT_TRUE(r.at_end());
    std::vector<Oid> refs;
    for_each_reference(header + ok, [&](std::string_view, Oid oid) { refs.push_back(oid); });
    EXPECT_EQ(refs, std::vector<Oid>{5});
    EXPECT_NO_THROW(describe_record(header + ok));
  }
  for (const std::size_t depth : {kMaxNesting + 1, std::size_t{100000}}) {
    const std::string deep = nested_lists(depth);
    EXPECT_THROW(StateReader(deep).skip(), StateError);
    EXPECT_THROW(for_each_reference(header + deep, [](std::string_view, Oid) {}), StateError);
    EXPECT_THROW(describe_record(header + deep), StateError);
  }
  std::string maps;
  for (std::size_t i = 0; i < 100000; ++i) maps += "\x0b\x01\x00"s;
  EXPECT_THROW(StateReader(maps).skip(), StateError);
}

// ---- record header ----

TEST(CodecHeader, HeaderReadsBackAsWritten) {
  std::string record;
  encode_header(record, "bank.Account", 0xffffffffu);
  record += "\x00"s;
  const RecordHeader h = decode_header(record);
  EXPECT_EQ(h.type_name, "bank.Account");
  EXPECT_EQ(h.version, 0xffffffffu);
  EXPECT_EQ(h.state_offset, record.size() - 1);
  EXPECT_EQ(record_type_name(record), "bank.Account");
}

TEST(CodecHeader, UnknownFormatByteIsStateError) {
  std::string record;
  encode_header(record, "t", 1);
  record[0] = 3;
  const std::string m = message_of([&] { decode_header(record); });
  EXPECT_NE(m.find("unknown record format 0x03"), std::string::npos) << m;
  EXPECT_EQ(record_type_name(record), "");
  EXPECT_THROW(decode_header(""), StateError);
}

TEST(CodecHeader, TypeNameMustHaveOneTo255Bytes) {
  std::string out;
  EXPECT_THROW(encode_header(out, "", 1), UsageError);
  EXPECT_THROW(encode_header(out, std::string(256, 'a'), 1), UsageError);
  EXPECT_TRUE(out.empty());
  encode_header(out, std::string(255, 'a'), 1);
  EXPECT_EQ(decode_header(out).type_name, std::string(255, 'a'));

  EXPECT_THROW(decode_header("\x01\x00\x01"s), StateError);  // empty name
  EXPECT_THROW(decode_header("\x01\x80\x02"s + std::string(256, 'a') + "\x01"), StateError);
  EXPECT_THROW(decode_header("\x01\x05"
                             "ab"s),
               StateError);  // name cut off
}

TEST(CodecHeader, VersionThatDoesNotFit32BitsIsStateError) {
  const std::string record = "\x01\x01t\x80\x80\x80\x80\x10"s;  // 2^32
  EXPECT_THROW(decode_header(record), StateError);
}

// ---- walks without the type ----

TEST(CodecWalk, ForEachReferenceFindsRefsAndXrefsNestedInListsAndMaps) {
  const std::string record = record_of([](StateWriter& w) {
    w.write_ref(1);
    w.begin_list(2);
    w.write("not a ref");
    w.begin_map(2);
    w.write_ref(2);            // a key
    w.write_xref("other", 3);  // a value
    w.write("k");
    w.begin_list(1);
    w.write_ref(4);
    w.write(std::optional<int>{});
    w.write_xref("db2", 5);
  });
  std::vector<std::pair<std::string, Oid>> found;
  for_each_reference(record, [&](std::string_view db, Oid oid) { found.emplace_back(db, oid); });
  const std::vector<std::pair<std::string, Oid>> expected{
      {"", 1}, {"", 2}, {"other", 3}, {"", 4}, {"db2", 5}};
  EXPECT_EQ(found, expected);
}

TEST(CodecWalk, ForEachReferenceOfAStateWithoutReferencesCallsNothing) {
  int calls = 0;
  for_each_reference(record_of([](StateWriter&) {}), [&](std::string_view, Oid) { ++calls; });
  for_each_reference(record_of([](StateWriter& w) {
                       w.write(std::vector<int>{1, 2});
                     }),
                     [&](std::string_view, Oid) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(CodecWalk, DescribeRecordRendersEveryKindOnOneLine) {
  const std::string record = record_of([](StateWriter& w) {
    w.write(5);
    w.write("x");
    w.write_ref(3);
    w.write(std::vector<std::uint32_t>{1, 2});
    w.write(std::map<std::string, bool>{{"k", true}});
    w.write_none();
    w.write(-0.5);
    w.write_bytes("\x00\xab"s);
    w.write_xref("other", 0x10);
  });
  EXPECT_EQ(describe_record(record),
            "bank.Account v2 [int 5, \"x\", ref 0x3, list(2)[uint 1, uint 2], "
            "map(1){\"k\": true}, none, double -0.5, bytes(2) 00ab, xref other:0x10]");
}

TEST(CodecWalk, DescribeRecordEscapesNonPrintableBytesAndShortensLongValues) {
  const std::string record = record_of(
      [](StateWriter& w) {
        w.write("a\"b\\\n\x01\xff"s);
        w.write(std::string(100, 'z'));
        w.write_bytes(std::string(40, '\x11'));
        w.write(std::vector<int>(40, 0));
      },
      "t", 0);
  const std::string d = describe_record(record);
  EXPECT_NE(d.find(R"("a\"b\\\n\x01\xff")"), std::string::npos) << d;
  EXPECT_NE(d.find("\"" + std::string(64, 'z') + "\"... (100 bytes)"), std::string::npos) << d;
  EXPECT_NE(d.find("bytes(40) " + std::string(64, '1') + "..."), std::string::npos) << d;
  EXPECT_NE(d.find(", ... 8 more]"), std::string::npos) << d;
  EXPECT_EQ(d.find('\n'), std::string::npos);
}

TEST(CodecWalk, TagNamesAreReadable) {
  EXPECT_EQ(to_string(Tag::signed_int), "signed integer");
  EXPECT_EQ(to_string(Tag::xref), "cross-database reference");
  EXPECT_EQ(to_string(static_cast<Tag>(0x42)), "unknown tag");
}

// Random bytes and mutations of valid records: whatever the input, the walks either succeed
// or throw StateError — never another exception, a crash or a huge allocation.
TEST(CodecFuzz, ArbitraryBytesOnlyEverThrowStateError) {
  std::mt19937_64 rng(20261122);
  auto byte = [&] { return static_cast<char>(rng() & 0xff); };
  std::vector<std::string> seeds{
      sample_record(), record_of([](StateWriter& w) {
        w.write(std::map<std::string, std::vector<Oid>>{{"a", {1, 2}}, {"b", {}}});
        w.write_xref("x", 9);
        w.begin_list(2);
        w.begin_list(1);
        w.write_ref(3);
        w.write(1.0);
      })};
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string input;
    if (i % 2 == 0) {
      // Random bytes, half of them behind a plausible header so the state gets exercised.
      const std::size_t n = rng() % 48;
      if (i % 4 == 0) input = "\x01\x01t\x01"s;
      for (std::size_t k = 0; k < n; ++k) {
        // Bias toward tag bytes so values nest and chain.
        input += (rng() % 3 == 0) ? byte() : static_cast<char>(rng() % 12);
      }
    } else {
      input = seeds[rng() % seeds.size()];
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !input.empty(); ++e) {
        const std::size_t at = rng() % input.size();
        switch (rng() % 4) {
          case 0: input[at] = byte(); break;
          case 1: input.insert(input.begin() + static_cast<std::ptrdiff_t>(at), byte()); break;
          case 2: input.erase(at, 1); break;
          case 3: input.resize(at); break;
        }
      }
    }
    SCOPED_TRACE(hex(input));
    try {
      const RecordHeader h = decode_header(input);
      (void)record_type_name(input);
      std::uint64_t sum = 0;
      for_each_reference(input, [&](std::string_view db, Oid oid) { sum += oid + db.size(); });
      EXPECT_FALSE(describe_record(input).empty());
      StateReader r(std::string_view(input).substr(h.state_offset));
      while (!r.at_end()) r.skip();
      ++accepted;
    } catch (const StateError&) {
    } catch (const std::exception& e) {
      FAIL() << "unexpected exception: " << e.what();
    }
    // The typed reader on the raw bytes, too.
    try {
      StateReader r(input);
      (void)r.get<std::vector<std::map<std::string, std::optional<std::int64_t>>>>();
    } catch (const StateError&) {
    } catch (const std::exception& e) {
      FAIL() << "unexpected exception: " << e.what();
    }
  }
  EXPECT_GT(accepted, 100);  // the fuzz reaches past the header often enough to mean something
}

// ---- ids ----

TEST(Ids, OidReprIsLowercaseHex) {
  EXPECT_EQ(oid_repr(0x1f), "0x1f");
  EXPECT_EQ(oid_repr(kRootOid), "0x0");
  EXPECT_EQ(oid_repr(~Oid{0}), "0xffffffffffffffff");
}

TEST(Ids, TidReprShowsHexAndTheUtcTimeToTheMicrosecond) {
  using namespace std::chrono;
  const auto t =
      sys_days{year{2026} / 11 / 22} + hours{10} + minutes{15} + seconds{3} + microseconds{123456};
  const Tid tid = tid_for_time(t);
  EXPECT_EQ(tid, static_cast<Tid>(duration_cast<microseconds>(t.time_since_epoch()).count()));
  EXPECT_EQ(tid_repr(tid), oid_repr(tid) + "(2026-11-22 10:15:03.123456Z)");
  EXPECT_EQ(tid_repr(1), "0x1(1970-01-01 00:00:00.000001Z)");
  EXPECT_EQ(tid_repr(kNoTid), "0x0(no revision)");
  EXPECT_EQ(tid_repr(kMaxTid), "0xffffffffffffffff");  // no calendar time to show
}

TEST(Ids, TidAndTimeConvertBothWays) {
  using namespace std::chrono;
  const auto t = sys_days{year{2030} / 1 / 1} + microseconds{7};
  EXPECT_EQ(time_of_tid(tid_for_time(t)), t);
  // Sub-microsecond times round down, so commits at or before t stay at or before.
  EXPECT_EQ(tid_for_time(t + nanoseconds{999}), tid_for_time(t));
  EXPECT_EQ(tid_for_time(system_clock::time_point{} - hours{1}), kNoTid);
  EXPECT_EQ(time_of_tid(kMaxTid), system_clock::time_point::max());
}

TEST(Ids, NextTidIsMonotonicWhenTheClockGoesBack) {
  EXPECT_EQ(next_tid(100, 200), 200u);
  EXPECT_EQ(next_tid(100, 100), 101u);
  EXPECT_EQ(next_tid(100, 50), 101u);
  EXPECT_EQ(next_tid(kNoTid, 0), 1u);  // never kNoTid
  EXPECT_EQ(next_tid(kNoTid, -5), 1u);
  Tid tid = kNoTid;
  std::int64_t clock = 1'000'000;
  for (int i = 0; i < 1000; ++i) {
    clock += (i % 3 == 0) ? -700 : 1;  // a clock that keeps stepping back
    const Tid next = next_tid(tid, clock);
    ASSERT_GT(next, tid);
    tid = next;
  }
  EXPECT_THROW(next_tid(kMaxTid, 0), StorageError);
}

// ---- errors ----

TEST(Errors, ConflictSaysWhatHappenedAndToRetry) {
  const ConflictError e(0x1f, "bank.Account", 0x200, 0x100);
  const std::string m = e.what();
  EXPECT_EQ(m, "conflict on object 0x1f (bank.Account): another transaction committed serial " +
                   tid_repr(0x200) + " after this transaction read serial " + tid_repr(0x100) +
                   "; retry the transaction");
  EXPECT_FALSE(e.locked());
  EXPECT_EQ(e.oid(), 0x1fu);
  EXPECT_EQ(e.type_name(), "bank.Account");
  EXPECT_EQ(e.committed_serial(), 0x200u);
  EXPECT_EQ(e.read_serial(), 0x100u);
  // The caller's generic retry loop sees a transient error.
  EXPECT_THROW(throw ConflictError(1, "", 2, 1), xact::TransientError);
}

TEST(Errors, LockedConflictAndReasonAreInTheMessage) {
  const ConflictError e(0x1f, "", kNoTid, 0x100, "held by tx 42");
  EXPECT_TRUE(e.locked());
  EXPECT_EQ(std::string(e.what()),
            "conflict on object 0x1f is locked by another prepared transaction; retry the "
            "transaction (held by tx 42)");
}

TEST(Errors, ReadConflictSaysTheObjectChangedSinceItWasRead) {
  const ReadConflictError e(0x3, "bank.Account", 0x200, 0x100);
  EXPECT_EQ(std::string(e.what()),
            "read conflict on object 0x3 (bank.Account): it changed (serial " + tid_repr(0x200) +
                ") since this transaction read it (serial " + tid_repr(0x100) +
                ") and asked to keep it current; retry the transaction");
  EXPECT_THROW(throw ReadConflictError(1, "", 2, 1), ConflictError);
}

TEST(Errors, AConflictIsCaughtByTheCoordinatorsConflictTypesButIsNoReadConflict) {
  const auto conflict = std::make_exception_ptr(ConflictError(0x1f, "bank.Account", 0x200, 0x100));
  try {
    std::rethrow_exception(conflict);
  } catch (const xact::ReadConflictError&) {
    ADD_FAILURE() << "a write conflict is not a read conflict";
  } catch (const xact::ConflictError& e) {
    const auto* details = dynamic_cast<const ConflictError*>(&e);
    ASSERT_NE(details, nullptr);
    EXPECT_EQ(details->oid(), 0x1fu);
  }
  EXPECT_THROW(std::rethrow_exception(conflict), xact::TransientError);
  EXPECT_THROW(std::rethrow_exception(conflict), xact::Error);
}

TEST(Errors, AReadConflictIsCaughtByEachCoordinatorTypeWithItsDetailsOnIt) {
  const ReadConflictError original(0x3, "bank.Account", 0x200, 0x100);
  const std::string message = original.what();
  const auto read_conflict = std::make_exception_ptr(original);
  try {
    std::rethrow_exception(read_conflict);
  } catch (const xact::ReadConflictError& e) {
    EXPECT_EQ(std::string(e.what()), message);
    const auto* details = dynamic_cast<const ConflictError*>(&e);
    ASSERT_NE(details, nullptr) << "the object store's details are on the coordinator's type";
    EXPECT_EQ(details->oid(), 0x3u);
    EXPECT_EQ(details->type_name(), "bank.Account");
    EXPECT_EQ(details->committed_serial(), 0x200u);
    EXPECT_EQ(details->read_serial(), 0x100u);
  }
  try {
    std::rethrow_exception(read_conflict);
  } catch (const xact::ConflictError& e) {
    EXPECT_EQ(std::string(e.what()), message) << "one ConflictError, one message";
  }
  try {
    std::rethrow_exception(read_conflict);
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.oid(), 0x3u);
    EXPECT_EQ(std::string(e.what()), message);
  }
  EXPECT_THROW(std::rethrow_exception(read_conflict), xact::TransientError);
  EXPECT_THROW(std::rethrow_exception(read_conflict), xact::Error);
  EXPECT_THROW(std::rethrow_exception(read_conflict), std::runtime_error);

  const ReadConflictError copy = original;  // exceptions are copied when thrown and captured
  EXPECT_EQ(std::string(copy.what()), message);
  EXPECT_EQ(copy.oid(), 0x3u);
  EXPECT_EQ(copy.read_serial(), 0x100u);
}

TEST(Errors, ObjectNotFoundNamesTheOid) {
  const ObjectNotFoundError e(0x7, "referenced from object 0x1");
  EXPECT_EQ(e.oid(), 0x7u);
  EXPECT_EQ(std::string(e.what()),
            "object 0x7 not found in this snapshot: referenced from object 0x1");
}

// --- nesting limits (issue 13) ----------------------------------------------------------------

// A recursive value type: what made readers overflow the stack at depth 60,000.
struct Tree {
  std::vector<Tree> kids;
  void save(StateWriter& w) const { w.write(kids); }
  void load(StateReader& r) { r.read(kids); }
};

TEST(CodecNesting, TheWriterRefusesListsNestedDeeperThanTheReadersAccept) {
  auto nested = [](std::size_t depth) {
    std::string out;
    encode_header(out, "t.Deep", 1);
    StateWriter w(out);
    for (std::size_t i = 0; i < depth; ++i) w.begin_list(1);
    w.write_ref(7);
    return out;
  };
  // At the limit: written, and every reader that walks without the type accepts it.
  const std::string ok = nested(kMaxNesting);
  std::vector<Oid> refs;
  for_each_reference(ok, [&](std::string_view, Oid oid) { refs.push_back(oid); });
  EXPECT_EQ(refs, std::vector<Oid>{7});
  EXPECT_NO_THROW(describe_record(ok));
  // One deeper: refused when written (so at commit), with what to do.
  try {
    nested(kMaxNesting + 1);
    FAIL() << "expected the writer to refuse";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(kMaxNesting)), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("Flatten"), std::string::npos) << e.what();
  }
  // Siblings do not add up: a wide, shallow state is fine.
  std::string wide;
  StateWriter w(wide);
  w.begin_list(1000);
  for (int i = 0; i < 1000; ++i) {
    w.begin_list(1);
    w.write(i);
  }
  SUCCEED();
}

TEST(CodecNesting, TheTypedWriterRefusesARecursiveValueDeeperThanTheLimit) {
  Tree deep;
  Tree* at = &deep;
  for (int i = 0; i < 300; ++i) at = &at->kids.emplace_back();
  std::string out;
  StateWriter w(out);
  EXPECT_THROW(w.write(deep), UsageError);
}

TEST(CodecNesting, TypedReadersOfDeeplyNestedDataFailCleanlyInsteadOfOverflowingTheStack) {
  // 60,000 nested one-element lists, as a damaged or hostile record may hold.
  std::string state;
  for (int i = 0; i < 60000; ++i) state += "\x0a\x01";
  state += "\x0a";
  state.push_back('\0');
  StateReader r(state);
  Tree t;
  EXPECT_THROW(r.read(t), StateError);
  StateReader skipper(state);
  EXPECT_THROW(skipper.skip(), StateError);
}

}  // namespace
}  // namespace xact::objectstore
