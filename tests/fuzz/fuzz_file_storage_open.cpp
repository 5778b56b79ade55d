// libFuzzer target: FileStorage::open (read-only, read-write, salvage), a walk over every
// object, verify and dump of an arbitrary data file and index. The first two input bytes say
// where the data file ends and the index begins. Anything but StorageError escaping, a crash,
// a hang or a huge allocation is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include <xact/errors.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/objectstore/file_storage.hpp>

namespace {

void put(xact::io::MemEnv& env, const std::string& path, const std::string& bytes) {
  auto f = env.new_writable_file(path);
  f->append(bytes);
  f->sync();
  f->close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  namespace os = xact::objectstore;
  if (size < 2) return 0;
  const std::string input(reinterpret_cast<const char*>(bytes) + 2, size - 2);
  const std::size_t split = (std::size_t{bytes[0]} << 8 | bytes[1]) % (input.size() + 1);
  for (int variant = 0; variant < 3; ++variant) {
    xact::io::MemEnv env;
    env.create_dir("/db");
    put(env, "/db/f", input.substr(0, split));
    if (split < input.size()) put(env, "/db/f.index", input.substr(split));
    os::FileStorageOptions o;
    o.env = &env;
    o.create = false;
    o.preallocate_bytes = 4096;
    o.read_only = variant == 0;
    o.salvage = variant == 2;
    try {
      auto s = os::FileStorage::open("/db/f", o);
      s->for_each_object([](os::Oid, os::Tid, std::string_view) { return true; });
      s->iterate(0, os::kMaxTid, [](const os::TransactionRecord&) { return true; });
    } catch (const xact::StorageError&) {
    }
    if (variant == 0) {
      try {
        os::FileStorage::verify("/db/f", &env);
        os::FileStorage::dump("/db/f", [](const os::FileRecordInfo&) { return true; }, &env);
      } catch (const xact::StorageError&) {
      }
    }
  }
  return 0;
}
