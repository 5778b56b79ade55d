// Running a benchmark binary whose reporter adds ratio counters: the output flags are read
// before benchmark::Initialize consumes them, and both the display and the --benchmark_out
// reporter are wrapped in the binary's ratio reporter (`Wrapper`, constructed from the
// reporter it forwards to), so the ratios reach the console and the file alike.
#pragma once

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>

namespace xact::bench {

struct OutputFlags {
  bool to_file = false;     ///< --benchmark_out was given
  std::string file_format;  ///< --benchmark_out_format (empty: the library's default, json)
};

/// Reads the output flags from argv; call it before benchmark::Initialize.
inline OutputFlags output_flags(int argc, char** argv) {
  auto value = [&](std::string_view flag) -> std::string {
    for (int i = 1; i < argc; ++i) {
      std::string_view arg = argv[i];
      if (arg.size() > flag.size() + 1 && arg.starts_with(flag) && arg[flag.size()] == '=') {
        return std::string(arg.substr(flag.size() + 1));
      }
    }
    return {};
  };
  return OutputFlags{!value("--benchmark_out").empty(), value("--benchmark_out_format")};
}

/// The --benchmark_out reporter, to be wrapped like the display one; null (the library's own,
/// without ratios) for csv, whose reporter is deprecated.
inline std::unique_ptr<benchmark::BenchmarkReporter> make_file_reporter(
    const std::string& format) {
  if (format == "console") {
    return std::make_unique<benchmark::ConsoleReporter>(benchmark::ConsoleReporter::OO_None);
  }
  if (format == "csv") return nullptr;
  return std::make_unique<benchmark::JSONReporter>();  // the library's default for the file
}

/// Runs the benchmarks selected on the command line through `Wrapper` reporters.
template <class Wrapper>
void run_with_ratios(const OutputFlags& flags) {
  Wrapper display(benchmark::CreateDefaultDisplayReporter());
  if (flags.to_file) {
    const auto file_reporter = make_file_reporter(flags.file_format);
    Wrapper file(file_reporter.get());
    benchmark::RunSpecifiedBenchmarks(&display, file_reporter ? &file : nullptr);
  } else {
    benchmark::RunSpecifiedBenchmarks(&display);
  }
}

}  // namespace xact::bench
