// The POSIX Env: real files, real fdatasync, flock for exclusive locks.
#include <xact/io/env.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <system_error>
#include <utility>

#include <xact/errors.hpp>

namespace xact::io {
namespace {

[[noreturn]] void throw_errno(std::string_view what, const std::string& path, int err) {
  // std::system_category().message is thread-safe, unlike strerror().
  throw StorageError(std::string(what) + " '" + path + "': " + std::system_category().message(err));
}

// Closes an fd on scope exit unless released; keeps the error paths below leak-free.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

int open_or_throw(const std::string& path, int flags, std::string_view what) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_errno(what, path, errno);
  return fd;
}

std::uint64_t fd_size(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("cannot stat", path, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

void pwrite_all(int fd, std::string_view data, std::uint64_t offset, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write to", path, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, std::uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void append(std::string_view data) override { write_at(size_, data); }

  void write_at(std::uint64_t offset, std::string_view data) override {
    check_open();
    pwrite_all(fd_, data, offset, path_);
    size_ = std::max(size_, offset + data.size());
  }

  void sync() override {
    check_open();
    // fdatasync also records a changed file size (it is needed to read the data back);
    // it skips only timestamps, which nothing in xact relies on.
    int rc;
    do {
      rc = ::fdatasync(fd_);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) throw_errno("cannot sync", path_, errno);
  }

  void close() override {
    if (fd_ < 0) return;
    const int fd = std::exchange(fd_, -1);
    // No retry on EINTR: on Linux the descriptor is released even then.
    if (::close(fd) != 0 && errno != EINTR) throw_errno("cannot close", path_, errno);
  }

  std::uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  void check_open() const {
    if (fd_ < 0) throw StorageError("file '" + path_ + "' is already closed");
  }

  std::string path_;
  int fd_;
  std::uint64_t size_;
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }

  std::size_t read(std::uint64_t offset, std::span<char> out) const override {
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t n =
          ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("cannot read", path_, errno);
      }
      if (n == 0) break;
      done += static_cast<std::size_t>(n);
    }
    return done;
  }

  std::uint64_t size() const override { return fd_size(fd_, path_); }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
};

// flock() rather than fcntl() locks: fcntl locks belong to the process, so a second lock in
// the same process would succeed and closing *any* descriptor of the file (say, to read the
// holder's name) would silently drop the lock. flock locks belong to the open file
// description, so a second open in the same process is refused like another process.
class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override {
    // Clear the holder's name while still holding the lock, so a stale name is never shown.
    [[maybe_unused]] const int rc = ::ftruncate(fd_, 0);
    ::close(fd_);  // releases the flock
  }

 private:
  int fd_;
};

class PosixEnv final : public Env {
 public:
  std::unique_ptr<WritableFile> new_writable_file(const std::string& path) override {
    const int fd = open_or_throw(path, O_WRONLY | O_CREAT | O_TRUNC, "cannot create");
    return std::make_unique<PosixWritableFile>(path, fd, 0);
  }

  std::unique_ptr<WritableFile> new_appendable_file(const std::string& path) override {
    FdGuard fd(open_or_throw(path, O_WRONLY | O_CREAT, "cannot open for writing"));
    const std::uint64_t size = fd_size(fd.get(), path);
    return std::make_unique<PosixWritableFile>(path, fd.release(), size);
  }

  std::unique_ptr<RandomAccessFile> new_random_access_file(const std::string& path) override {
    const int fd = open_or_throw(path, O_RDONLY, "cannot open for reading");
    return std::make_unique<PosixRandomAccessFile>(path, fd);
  }

  bool exists(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT || errno == ENOTDIR) return false;
    throw_errno("cannot stat", path, errno);
  }

  std::uint64_t file_size(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw_errno("cannot stat", path, errno);
    return static_cast<std::uint64_t>(st.st_size);
  }

  void truncate_file(const std::string& path, std::uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
      throw_errno("cannot truncate", path, errno);
    }
  }

  void rename_file(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      throw_errno("cannot rename", from + "' to '" + to, errno);
    }
  }

  void remove_file(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) throw_errno("cannot remove", path, errno);
  }

  void create_dir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) == 0) return;
    const int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return;
    throw_errno("cannot create directory", path, err);
  }

  void remove_dir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) throw_errno("cannot remove directory", path, errno);
  }

  std::vector<std::string> list_dir(const std::string& path) override {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) throw_errno("cannot list directory", path, errno);
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* e = ::readdir(d)) {
      const std::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    const int err = errno;
    ::closedir(d);
    if (err != 0) throw_errno("cannot list directory", path, err);
    std::sort(names.begin(), names.end());
    return names;
  }

  void sync_dir(const std::string& path) override {
    FdGuard fd(open_or_throw(path, O_RDONLY | O_DIRECTORY, "cannot open directory"));
    int rc;
    do {
      rc = ::fsync(fd.get());
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) throw_errno("cannot sync directory", path, errno);
  }

  std::unique_ptr<FileLock> lock_file(const std::string& path) override {
    FdGuard fd(open_or_throw(path, O_RDWR | O_CREAT, "cannot open lock file"));
    int rc;
    do {
      rc = ::flock(fd.get(), LOCK_EX | LOCK_NB);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      const int err = errno;
      if (err != EWOULDBLOCK) throw_errno("cannot lock", path, err);
      throw FileLockedError("'" + path + "' is locked by " + read_holder(fd.get()));
    }
    const std::string holder = lock_holder_description() + "\n";
    if (::ftruncate(fd.get(), 0) != 0) throw_errno("cannot write lock file", path, errno);
    pwrite_all(fd.get(), holder, 0, path);
    return std::make_unique<PosixFileLock>(fd.release());
  }

  std::int64_t now_micros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

 private:
  static std::string read_holder(int fd) {
    char buf[256];
    const ssize_t n = ::pread(fd, buf, sizeof buf, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) {
      holder.pop_back();
    }
    // Empty between the holder's flock() and its write of its name: rare, and harmless.
    return holder.empty() ? "another holder (which has not written its name yet)" : holder;
  }
};

}  // namespace

Env& Env::posix() {
  // Never destroyed: files may be closed from static destructors after main() returns.
  static PosixEnv* env = new PosixEnv;
  return *env;
}

}  // namespace xact::io
