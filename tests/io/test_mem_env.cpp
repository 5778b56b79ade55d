// MemEnv specifics. The Env contract is checked for MemEnv in test_env.cpp, the crash model
// (which MemEnv implements and FaultInjectionEnv triggers) in test_fault_injection_env.cpp.
#include <xact/io/mem_env.hpp>

#include <gtest/gtest.h>

#include <xact/errors.hpp>

namespace xact::io {
namespace {

TEST(MemEnv, PathsAreNormalized) {
  MemEnv env;
  env.create_dir("/a");
  env.new_writable_file("a//./f")->append("x");
  EXPECT_TRUE(env.exists("/a/f"));
  EXPECT_EQ(env.read_file("./a/f"), "x");
  EXPECT_EQ(env.list_dir("a/"), std::vector<std::string>{"f"});
}

TEST(MemEnv, DotDotIsAUsageError) { EXPECT_THROW(MemEnv().exists("/a/../b"), UsageError); }

TEST(MemEnv, RootAlwaysExists) {
  MemEnv env;
  EXPECT_TRUE(env.exists("/"));
  env.create_dir("/");
  EXPECT_TRUE(env.list_dir("/").empty());
}

TEST(MemEnv, MissingParentDirectoryIsAnError) {
  MemEnv env;
  EXPECT_THROW(env.new_writable_file("/no/f"), StorageError);
  EXPECT_THROW(env.create_dir("/no/d"), StorageError);
}

TEST(MemEnv, WriteFileReplacesContents) {
  MemEnv env;
  env.new_writable_file("/f")->append("old");
  env.write_file("/f", "new contents");
  EXPECT_EQ(env.read_file("/f"), "new contents");
  EXPECT_THROW(env.write_file("/missing", "x"), StorageError);
}

TEST(MemEnv, RenamedFileKeepsItsOpenHandle) {
  MemEnv env;
  auto file = env.new_writable_file("/a");
  env.rename_file("/a", "/b");
  file->append("written after the rename");
  EXPECT_EQ(env.read_file("/b"), "written after the rename");
}

TEST(MemEnv, DirectoryIsNotAFile) {
  MemEnv env;
  env.create_dir("/d");
  EXPECT_THROW(env.new_writable_file("/d"), StorageError);
  EXPECT_THROW(env.new_random_access_file("/d"), StorageError);
  EXPECT_THROW(env.remove_file("/d"), StorageError);
}

}  // namespace
}  // namespace xact::io
