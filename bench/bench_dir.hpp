// Where a benchmark writes its files: a fresh directory it creates itself (mkdtemp) under
// $XACT_BENCH_DIR (or under a default next to the binary), removed with everything in it when
// the benchmark ends.
//
// XACT_BENCH_DIR names a place the user chose for the files (a real disk, not tmpfs): it may be
// their home directory or hold their own files. A benchmark therefore never writes into it
// directly, never reuses or removes a subdirectory it did not create, and removes only its own
// xact-<name>-XXXXXX directory (test bench_dir_keeps_the_users_files checks every benchmark).
//
// Thread-safety: construct before the benchmarks run; path() may then be read from any thread.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace xact::bench {

class BenchDir {
 public:
  /// Creates `<base>/xact-<name>-XXXXXX`, where base is $XACT_BENCH_DIR when set (created if
  /// missing; only the missing parts are new, and they are left in place), else the directory
  /// of the running binary (the build tree). Throws std::system_error when it cannot.
  explicit BenchDir(std::string_view name) {
    std::filesystem::path base;
    if (const char* env = std::getenv("XACT_BENCH_DIR"); env != nullptr && *env != '\0') {
      base = env;
    } else {
      base = std::filesystem::read_symlink("/proc/self/exe").parent_path();
    }
    std::filesystem::create_directories(base);
    std::string pattern = (base / ("xact-" + std::string(name) + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(),
                              "cannot create a benchmark directory " + pattern +
                                  " (set XACT_BENCH_DIR to a writable directory)");
    }
    path_ = pattern;
    owner_ = ::getpid();
  }
  /// Removes the directory it created, and nothing else (not in a fork()ed child; not with
  /// XACT_BENCH_KEEP=1, which keeps the files for a look and prints where they are).
  ~BenchDir() {
    if (::getpid() != owner_) return;
    if (const char* keep = std::getenv("XACT_BENCH_KEEP"); keep != nullptr && *keep == '1') {
      std::fprintf(stderr, "XACT_BENCH_KEEP=1: the files are kept in %s\n", path_.c_str());
      return;
    }
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  BenchDir(const BenchDir&) = delete;
  BenchDir& operator=(const BenchDir&) = delete;

  const std::string& path() const noexcept { return path_; }
  /// A path inside the directory (not created).
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
  pid_t owner_ = 0;
};

}  // namespace xact::bench
