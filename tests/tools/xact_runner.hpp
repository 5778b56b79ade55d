// Runs the built `xact` tool as a child process and checks what it printed: shared by the tests
// of the tool's commands. Two builds of the tool, their paths compiled into the tests:
// XACT_CLI_PATH, the installed `xact` (run_xact), and XACT_TEST_TOOL_PATH, the tests' build with
// the key-value test store (run_test_tool).
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <xact/testing/crash_harness.hpp>

extern char** environ;

namespace xact::tools_test {

using xact::testing::TempDir;

struct ToolRun {
  int code = -1;
  std::string out;
  std::string err;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the tool at `tool` with `args`, stdout and stderr captured in files of `scratch`.
inline ToolRun run_tool(const char* tool, const TempDir& scratch,
                        const std::vector<std::string>& args) {
  const std::string out_path = scratch / "stdout";
  const std::string err_path = scratch / "stderr";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  std::vector<std::string> storage{tool};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, tool, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ToolRun run;
  if (rc != 0) {
    run.err = "posix_spawn failed: " + std::to_string(rc);
    return run;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.out = read_file(out_path);
  run.err = read_file(err_path);
  return run;
}

// Runs the installed tool's build, `xact`.
inline ToolRun run_xact(const TempDir& scratch, const std::vector<std::string>& args) {
  return run_tool(XACT_CLI_PATH, scratch, args);
}

// Runs the tests' build of the tool, which also knows --resource NAME=kv:PATH.
inline ToolRun run_test_tool(const TempDir& scratch, const std::vector<std::string>& args) {
  return run_tool(XACT_TEST_TOOL_PATH, scratch, args);
}

// Every regular file under `dir` (recursively), by path relative to `dir`, with its size and a
// 64-bit FNV-1a hash of its bytes (short enough to print when a check fails): what a command that
// must change nothing is checked against. A missing `dir` gives an empty map.
inline std::map<std::string, std::string> snapshot_files(const std::string& dir) {
  std::map<std::string, std::string> files;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      const std::string bytes = read_file(entry.path());
      std::uint64_t hash = 14695981039346656037ull;
      for (const char c : bytes) {
        hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
      }
      std::ostringstream digest;
      digest << bytes.size() << " bytes, fnv1a " << std::hex << hash;
      files[std::filesystem::relative(entry.path(), dir).string()] = digest.str();
    }
  }
  return files;
}

inline std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

inline ::testing::AssertionResult has(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << part << "' not in:\n" << text;
}

}  // namespace xact::tools_test
