// MemEnv: the in-memory file system with POSIX's durability model.
#include <xact/io/mem_env.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include <xact/errors.hpp>

namespace xact::io {
namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  while (!path.empty()) {
    const auto slash = path.find('/');
    const std::string_view part = path.substr(0, slash);
    if (part == "..") throw UsageError("MemEnv does not support '..' in paths");
    if (!part.empty() && part != ".") parts.emplace_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

std::string normalize(std::string_view path) {
  std::string out;
  for (const auto& part : split_path(path)) out += "/" + part;
  return out.empty() ? "/" : out;
}

[[noreturn]] void throw_missing(std::string_view what, const std::string& path) {
  throw StorageError(std::string(what) + " '" + path + "': No such file or directory");
}

}  // namespace

// A file or a directory. Files remember what was last synced; directories remember which
// entries were last synced. Everything here is guarded by MemEnv::mu_.
struct MemEnv::Node {
  static constexpr std::uint64_t kClean = std::numeric_limits<std::uint64_t>::max();

  bool is_dir = false;
  // File.
  std::string data;
  std::string synced;
  // The byte range written since the last sync, so sync() copies only that range.
  std::uint64_t dirty_lo = kClean;
  std::uint64_t dirty_hi = 0;
  // Directory.
  std::map<std::string, std::shared_ptr<Node>> entries;
  std::map<std::string, std::shared_ptr<Node>> durable_entries;

  void mark_dirty(std::uint64_t lo, std::uint64_t hi) {
    if (lo >= hi) return;
    dirty_lo = std::min(dirty_lo, lo);
    dirty_hi = std::max(dirty_hi, hi);
  }

  void write(std::uint64_t offset, std::string_view bytes) {
    const std::uint64_t end = offset + bytes.size();
    if (end > data.size()) {
      mark_dirty(data.size(), end);  // a gap past the old end reads as zeros
      data.resize(end);
    }
    std::memcpy(data.data() + offset, bytes.data(), bytes.size());
    mark_dirty(offset, end);
  }

  void resize(std::uint64_t size) {
    mark_dirty(std::min<std::uint64_t>(size, data.size()),
               std::max<std::uint64_t>(size, data.size()));
    data.resize(size);
  }

  void sync() {
    synced.resize(data.size());
    const std::uint64_t hi = std::min<std::uint64_t>(dirty_hi, data.size());
    if (dirty_lo < hi) std::memcpy(synced.data() + dirty_lo, data.data() + dirty_lo, hi - dirty_lo);
    dirty_lo = kClean;
    dirty_hi = 0;
  }

  void revert() {
    if (is_dir) {
      entries = durable_entries;
      for (auto& [name, child] : entries) child->revert();
    } else {
      data = synced;
      dirty_lo = kClean;
      dirty_hi = 0;
    }
  }
};

class MemEnv::MemWritableFile final : public WritableFile {
 public:
  MemWritableFile(MemEnv* env, std::shared_ptr<Node> node, std::string path,
                  std::uint64_t generation, std::uint64_t size)
      : env_(env),
        node_(std::move(node)),
        path_(std::move(path)),
        generation_(generation),
        size_(size) {}

  void append(std::string_view data) override { write_at(size_, data); }

  void write_at(std::uint64_t offset, std::string_view data) override {
    check_open();
    env_->apply(Op::kWrite, path_, data.size(), [&](std::size_t n) {
      env_->check_generation_locked(generation_, path_);
      node_->write(offset, data.substr(0, n));
      size_ = std::max(size_, offset + n);
    });
  }

  void sync() override {
    check_open();
    env_->apply(Op::kSync, path_, 0, [&](std::size_t) {
      env_->check_generation_locked(generation_, path_);
      node_->sync();
    });
  }

  void close() override { closed_ = true; }
  std::uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  void check_open() const {
    if (closed_) throw StorageError("file '" + path_ + "' is already closed");
  }

  MemEnv* env_;
  std::shared_ptr<Node> node_;
  std::string path_;
  std::uint64_t generation_;
  std::uint64_t size_;
  bool closed_ = false;
};

class MemEnv::MemRandomAccessFile final : public RandomAccessFile {
 public:
  MemRandomAccessFile(MemEnv* env, std::shared_ptr<Node> node, std::string path,
                      std::uint64_t generation)
      : env_(env), node_(std::move(node)), path_(std::move(path)), generation_(generation) {}

  std::size_t read(std::uint64_t offset, std::span<char> out) const override {
    std::lock_guard lock(env_->mu_);
    env_->check_generation_locked(generation_, path_);
    if (offset >= node_->data.size()) return 0;
    const std::size_t n = std::min<std::uint64_t>(out.size(), node_->data.size() - offset);
    std::memcpy(out.data(), node_->data.data() + offset, n);
    return n;
  }

  std::uint64_t size() const override {
    std::lock_guard lock(env_->mu_);
    env_->check_generation_locked(generation_, path_);
    return node_->data.size();
  }

  const std::string& path() const override { return path_; }

 private:
  MemEnv* env_;
  std::shared_ptr<Node> node_;
  std::string path_;
  std::uint64_t generation_;
};

class MemEnv::MemFileLock final : public FileLock {
 public:
  MemFileLock(MemEnv* env, std::string key, std::uint64_t token)
      : env_(env), key_(std::move(key)), token_(token) {}
  ~MemFileLock() override {
    std::lock_guard lock(env_->mu_);
    // After a simulated crash the entry may belong to a newer holder: leave that one alone.
    const auto it = env_->locks_.find(key_);
    if (it != env_->locks_.end() && it->second.token == token_) env_->locks_.erase(it);
  }

 private:
  MemEnv* env_;
  std::string key_;
  std::uint64_t token_;
};

MemEnv::MemEnv() : root_(std::make_shared<Node>()) { root_->is_dir = true; }
MemEnv::~MemEnv() = default;

MemEnv::Verdict MemEnv::before(Op, const std::string&, std::size_t) { return {}; }

void MemEnv::apply(Op op, const std::string& path, std::size_t bytes,
                   const std::function<void(std::size_t)>& action) {
  const Verdict verdict = before(op, path, bytes);
  std::lock_guard lock(mu_);
  if (!verdict.fail) {
    action(bytes);
    return;
  }
  if (op == Op::kWrite && verdict.apply_bytes > 0) action(std::min(verdict.apply_bytes, bytes));
  throw StorageError(verdict.message);
}

void MemEnv::check_generation_locked(std::uint64_t generation, const std::string& path) const {
  if (generation != generation_) {
    throw StorageError("'" + path +
                       "': this handle was opened before a simulated crash; "
                       "reopen the file");
  }
}

std::shared_ptr<MemEnv::Node> MemEnv::find_locked(const std::string& path) const {
  std::shared_ptr<Node> node = root_;
  for (const auto& part : split_path(path)) {
    if (!node->is_dir) return nullptr;
    const auto it = node->entries.find(part);
    if (it == node->entries.end()) return nullptr;
    node = it->second;
  }
  return node;
}

std::shared_ptr<MemEnv::Node> MemEnv::find_file_locked(const std::string& path,
                                                       std::string_view what) const {
  auto node = find_locked(path);
  if (!node) throw_missing(what, path);
  if (node->is_dir) throw StorageError(std::string(what) + " '" + path + "': Is a directory");
  return node;
}

std::pair<std::shared_ptr<MemEnv::Node>, std::string> MemEnv::find_parent_locked(
    const std::string& path, std::string_view what) const {
  auto parts = split_path(path);
  if (parts.empty()) throw StorageError(std::string(what) + " '" + path + "': Is a directory");
  std::string name = std::move(parts.back());
  std::string parent_path;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) parent_path += "/" + parts[i];
  auto parent = find_locked(parent_path);
  if (!parent) throw_missing(what, path);
  if (!parent->is_dir) throw StorageError(std::string(what) + " '" + path + "': Not a directory");
  return {std::move(parent), std::move(name)};
}

std::shared_ptr<MemEnv::Node> MemEnv::open_file_locked(const std::string& path, bool truncate) {
  auto [parent, name] = find_parent_locked(path, "cannot open");
  auto& slot = parent->entries[name];
  if (!slot) {
    slot = std::make_shared<Node>();  // a new name: durable only after sync_dir(parent)
  } else if (slot->is_dir) {
    throw StorageError("cannot open '" + path + "': Is a directory");
  } else if (truncate) {
    slot->resize(0);  // O_TRUNC keeps the inode: the old contents stay durable until a sync
  }
  return slot;
}

std::unique_ptr<WritableFile> MemEnv::open_writable(const std::string& path, bool truncate) {
  std::shared_ptr<Node> node;
  std::uint64_t generation = 0;
  std::uint64_t size = 0;
  apply(Op::kMeta, path, 0, [&](std::size_t) {
    node = open_file_locked(path, truncate);
    generation = generation_;
    size = node->data.size();
  });
  return std::make_unique<MemWritableFile>(this, std::move(node), path, generation, size);
}

std::unique_ptr<WritableFile> MemEnv::new_writable_file(const std::string& path) {
  return open_writable(path, /*truncate=*/true);
}

std::unique_ptr<WritableFile> MemEnv::new_appendable_file(const std::string& path) {
  return open_writable(path, /*truncate=*/false);
}

std::unique_ptr<RandomAccessFile> MemEnv::new_random_access_file(const std::string& path) {
  std::lock_guard lock(mu_);
  auto node = find_file_locked(path, "cannot open for reading");
  return std::make_unique<MemRandomAccessFile>(this, std::move(node), path, generation_);
}

bool MemEnv::exists(const std::string& path) {
  std::lock_guard lock(mu_);
  return find_locked(path) != nullptr;
}

std::uint64_t MemEnv::file_size(const std::string& path) {
  std::lock_guard lock(mu_);
  return find_file_locked(path, "cannot stat")->data.size();
}

void MemEnv::truncate_file(const std::string& path, std::uint64_t size) {
  apply(Op::kMeta, path, 0,
        [&](std::size_t) { find_file_locked(path, "cannot truncate")->resize(size); });
}

void MemEnv::rename_file(const std::string& from, const std::string& to) {
  apply(Op::kMeta, from, 0, [&](std::size_t) {
    auto [from_dir, from_name] = find_parent_locked(from, "cannot rename");
    const auto it = from_dir->entries.find(from_name);
    if (it == from_dir->entries.end()) throw_missing("cannot rename", from);
    auto [to_dir, to_name] = find_parent_locked(to, "cannot rename");
    auto node = it->second;
    from_dir->entries.erase(it);
    to_dir->entries[to_name] = std::move(node);
  });
}

void MemEnv::remove_file(const std::string& path) {
  apply(Op::kMeta, path, 0, [&](std::size_t) {
    auto [dir, name] = find_parent_locked(path, "cannot remove");
    const auto it = dir->entries.find(name);
    if (it == dir->entries.end()) throw_missing("cannot remove", path);
    if (it->second->is_dir) throw StorageError("cannot remove '" + path + "': Is a directory");
    dir->entries.erase(it);  // open handles keep the node, as POSIX keeps the inode
  });
}

void MemEnv::create_dir(const std::string& path) {
  apply(Op::kMeta, path, 0, [&](std::size_t) {
    if (split_path(path).empty()) return;  // the root always exists
    auto [parent, name] = find_parent_locked(path, "cannot create directory");
    auto& slot = parent->entries[name];
    if (slot && !slot->is_dir) {
      throw StorageError("cannot create directory '" + path + "': File exists");
    }
    if (!slot) {
      slot = std::make_shared<Node>();
      slot->is_dir = true;
    }
  });
}

void MemEnv::remove_dir(const std::string& path) {
  apply(Op::kMeta, path, 0, [&](std::size_t) {
    auto [parent, name] = find_parent_locked(path, "cannot remove directory");
    const auto it = parent->entries.find(name);
    if (it == parent->entries.end()) throw_missing("cannot remove directory", path);
    if (!it->second->is_dir) {
      throw StorageError("cannot remove directory '" + path + "': Not a directory");
    }
    if (!it->second->entries.empty()) {
      throw StorageError("cannot remove directory '" + path + "': Directory not empty");
    }
    parent->entries.erase(it);
  });
}

std::vector<std::string> MemEnv::list_dir(const std::string& path) {
  std::lock_guard lock(mu_);
  const auto node = find_locked(path);
  if (!node) throw_missing("cannot list directory", path);
  if (!node->is_dir) throw StorageError("cannot list directory '" + path + "': Not a directory");
  std::vector<std::string> names;
  for (const auto& [name, child] : node->entries) names.push_back(name);
  return names;  // std::map keeps them sorted
}

void MemEnv::sync_dir(const std::string& path) {
  apply(Op::kDirSync, path, 0, [&](std::size_t) {
    const auto node = find_locked(path);
    if (!node) throw_missing("cannot open directory", path);
    if (!node->is_dir) throw StorageError("cannot sync directory '" + path + "': Not a directory");
    node->durable_entries = node->entries;
  });
}

std::unique_ptr<FileLock> MemEnv::lock_file(const std::string& path) {
  std::string key = normalize(path);
  std::uint64_t token = 0;
  apply(Op::kLock, path, 0, [&](std::size_t) {
    const auto it = locks_.find(key);
    if (it != locks_.end()) {
      throw FileLockedError("'" + path + "' is locked by " + it->second.holder);
    }
    std::string holder = lock_holder_description();
    auto node = open_file_locked(path, /*truncate=*/true);
    node->write(0, holder + "\n");
    token = next_lock_token_++;
    locks_.emplace(key, LockEntry{token, std::move(holder)});
  });
  return std::make_unique<MemFileLock>(this, std::move(key), token);
}

std::int64_t MemEnv::now_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string MemEnv::read_file(const std::string& path) {
  std::lock_guard lock(mu_);
  return find_file_locked(path, "cannot read")->data;
}

void MemEnv::write_file(const std::string& path, std::string_view contents) {
  std::lock_guard lock(mu_);
  auto node = find_file_locked(path, "cannot write");
  node->data.assign(contents);
  node->synced.assign(contents);
  node->dirty_lo = Node::kClean;
  node->dirty_hi = 0;
}

void MemEnv::drop_unsynced() {
  std::lock_guard lock(mu_);
  root_->revert();
  ++generation_;
  locks_.clear();
}

}  // namespace xact::io
