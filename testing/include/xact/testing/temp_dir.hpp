// TempDir: a fresh directory for a test that runs against the real file system.
#pragma once

#include <string>

namespace xact::testing {

/// A fresh directory under $TMPDIR (or /tmp), made by mkdtemp, removed with everything in it on
/// destruction. Not thread-safe; one owner.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  /// path() + "/" + name.
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace xact::testing
