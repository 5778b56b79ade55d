// xact-demo: the demo of issue 21 on the embedded default (no server). Accounts are objects in
// a file storage ("main"), each session's state is an object in a volatile second database
// ("sessions", the seat belt on), profiles are property sheets in SQLite, sessions live in the
// in-memory session store with compensation, and a durable decision log ties them together;
// recovery runs at start. The routes are served over HTTP by xact::http on a loopback port
// (one transaction per request, retried on a conflict, on a worker pool); N client threads
// send transfers, profile edits and session updates on a small hot set over kept-alive
// connections, so that conflicts happen and are retried; a progress line each second, a
// summary, and an invariant check that prints PASS or FAIL (exit status 1 on FAIL).
//
// --crash: the demo runs once in a child process armed with a random named crash point
// (xact::arm_crash_point, as XACT_CRASH_AT would), which SIGKILLs it mid-commit; then it opens
// everything again, recovers, runs the load again and checks.
//
// Usage: xact-demo [--clients N] [--seconds S | --requests N] [--crash] [--dir DIR] ...
#include "app.hpp"
#include "server.hpp"

#include <xact/crash_point.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/retry.hpp>

#include <boost/program_options.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

namespace {

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

struct LoadOptions {
  int clients = 8;
  double seconds = 5;
  std::int64_t requests = 0;  // 0: until `seconds` have passed
};

struct LoadResult {
  std::int64_t requests = 0;
  std::int64_t failed = 0;  // retries exhausted or another error: rolled back, reported
  std::vector<double> latencies_ms;
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

LoadResult run_load(demo::App& app, unsigned short port, const LoadOptions& lo,
                    const std::string& tag) {
  std::atomic<std::int64_t> issued{0};
  std::atomic<std::int64_t> done{0};
  std::atomic<std::int64_t> failed{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  LoadResult result;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(lo.seconds));
  auto client = [&](int id) {
    demo::Client http(port);
    std::mt19937_64 rng(std::random_device{}() + static_cast<unsigned>(id));
    std::vector<double> lat;
    while (!stop.load(std::memory_order_relaxed)) {
      if (lo.requests > 0 ? issued.fetch_add(1) >= lo.requests : Clock::now() >= deadline) break;
      const int kind = static_cast<int>(rng() % 3);
      const auto t0 = Clock::now();
      try {
        // Over HTTP to the demo's server.
        demo::Request req;
        if (kind == 0) {
          req.route = "/transfer";
          req.params["from"] = std::to_string(rng() % static_cast<unsigned>(app.accounts()));
          req.params["to"] = std::to_string(rng() % static_cast<unsigned>(app.accounts()));
          req.params["amount"] = std::to_string(1 + rng() % 100);
        } else if (kind == 1) {
          req.route = "/profile";
          req.params["profile"] = std::to_string(rng() % static_cast<unsigned>(app.profiles()));
          req.params["bio"] = "edited by client " + std::to_string(id);
        } else {
          req.route = "/session";
          req.params["session"] = std::to_string(rng() % app.session_ids().size());
        }
        const auto res = http.send(req);
        if (res.status != 200) {
          throw std::runtime_error(req.route + " answered " + std::to_string(res.status) + ": " +
                                   res.body);
        }
      } catch (const std::exception& e) {
        failed.fetch_add(1);
        std::cerr << "[" << tag << "] request failed: " << e.what() << "\n";
      }
      lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      done.fetch_add(1);
    }
    std::lock_guard lock(mu);
    result.latencies_ms.insert(result.latencies_ms.end(), lat.begin(), lat.end());
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(lo.clients));
  for (int i = 0; i < lo.clients; ++i) threads.emplace_back(client, i);

  // The progress line, each second: this second's figures from the demo and from xact's
  // process-wide counters (<xact/log.hpp>).
  std::atomic<int> running{lo.clients};
  std::thread progress([&] {
    auto prev = xact::counters();
    std::int64_t prev_done = 0;
    auto next = start + std::chrono::seconds(1);
    while (running.load() > 0) {
      std::this_thread::sleep_until(std::min(next, Clock::now() + std::chrono::milliseconds(50)));
      if (Clock::now() < next) continue;
      next += std::chrono::seconds(1);
      const auto c = xact::counters();
      const std::int64_t d = done.load();
      std::printf("[%s] %3.0fs  requests/s %6" PRId64 "  commits/s %6" PRIu64
                  "  retries/s %5" PRIu64 "  conflicts/s %5" PRIu64 "\n",
                  tag.c_str(), std::chrono::duration<double>(Clock::now() - start).count(),
                  d - prev_done, c.commits - prev.commits, c.retries - prev.retries,
                  c.conflicts - prev.conflicts);
      std::fflush(stdout);
      prev = c;
      prev_done = d;
    }
  });
  for (auto& t : threads) {
    t.join();
    running.fetch_sub(1);
  }
  progress.join();
  result.requests = done.load();
  result.failed = failed.load();
  return result;
}

struct Phase {
  std::string tag;
  bool check = true;
  bool drop_server_data = false;  ///< at the end (a data directory removed at exit)
};

// Opens the application (recovering), runs the load, prints the summary and (if asked) the
// check. Returns 0 on PASS, 1 on FAIL.
int run_phase(const demo::AppOptions& ao, const LoadOptions& lo, const Phase& ph,
              int started_fd = -1) {
  const auto before = xact::counters();
  demo::App app(ao);
  std::cout << "[" << ph.tag << "] stores: objects in main.xfs, " << app.describe_stores() << "\n"
            << "[" << ph.tag << "] recovery at start: " << app.recovery_summary() << "\n";
  for (const auto& w : app.start_waits()) std::cout << "[" << ph.tag << "] start: " << w << "\n";
  std::cout
      << "[" << ph.tag << "] " << lo.clients << " clients on " << app.accounts() << " accounts, "
      << app.profiles() << " profiles, " << app.session_ids().size() << " sessions; "
      << (lo.requests > 0
              ? std::to_string(lo.requests) + " requests"
              : std::to_string(lo.seconds).substr(0, std::to_string(lo.seconds).find('.') + 2) +
                    " s")
      << std::endl;
  if (started_fd >= 0) {
    const char byte = 1;
    (void)!::write(started_fd, &byte, 1);
    ::close(started_fd);
  }
  // The server: a worker per client (each request's transaction blocks on fsync and SQL).
  demo::Server server(app, lo.clients);
  std::cout << "[" << ph.tag << "] serving on http://127.0.0.1:" << server.port()
            << " (xact::http: /transfer /profile /session /metrics)" << std::endl;
  const auto t0 = Clock::now();
  LoadResult r = run_load(app, server.port(), lo, ph.tag);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const demo::Server::Totals http = server.totals();
  server.stop();
  const auto c = xact::counters();
  const double p50 = percentile(r.latencies_ms, 0.50);
  const double p99 = percentile(r.latencies_ms, 0.99);
  const std::uint64_t heuristics = c.heuristics - before.heuristics;
  const std::uint64_t in_doubt = c.in_doubt - before.in_doubt;
  std::printf("[%s] summary: %" PRId64 " requests in %.1f s (%.0f/s), %" PRId64
              " failed; commits %" PRIu64 ", conflicts at commit %" PRIu64 ", retries %" PRIu64
              "; latency p50 %.2f ms, p99 %.2f ms; heuristics: %s; in doubt: %" PRIu64 "\n",
              ph.tag.c_str(), r.requests, secs, static_cast<double>(r.requests) / secs, r.failed,
              c.commits - before.commits, c.conflicts - before.conflicts,
              c.retries - before.retries, p50, p99,
              heuristics == 0 ? "none" : std::to_string(heuristics).c_str(), in_doubt);
  std::printf("[%s] http: %" PRIu64 " requests, %" PRIu64 " attempts, %" PRIu64
              " conflicts retried, %" PRIu64 " retries exhausted (503)\n",
              ph.tag.c_str(), http.requests, http.attempts, http.conflicts, http.retries_exhausted);
  std::fflush(stdout);
  if (!ph.check) return 0;
  const demo::CheckResult check = app.check();
  for (const auto& l : check.lines) std::cout << "[" << ph.tag << "] " << l << "\n";
  const bool pass = check.pass && heuristics == 0 && in_doubt == 0 && app.recovery_complete();
  std::cout << "[" << ph.tag << "] invariants: " << (pass ? "PASS" : "FAIL") << std::endl;
  if (ph.drop_server_data) app.drop_server_data();
  return pass ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  demo::AppOptions ao;
  LoadOptions lo;
  bool crash = false;
  bool require_servers = false;
  std::string dir;
  po::options_description desc("xact-demo options");
  desc.add_options()("help,h", "this text")("clients", po::value(&lo.clients)->default_value(8),
                                            "concurrent client threads")(
      "seconds", po::value(&lo.seconds)->default_value(5.0), "how long the load runs")(
      "requests", po::value(&lo.requests)->default_value(0),
      "stop after this many requests instead (0: use --seconds)")(
      "crash", po::bool_switch(&crash),
      "kill the demo once at a random crash point, restart, recover, check")(
      "require-servers", po::bool_switch(&require_servers),
      "refuse to run on the embedded stores: exit 77 (a skip) without XACT_PG_URI and "
      "XACT_MYSQL_HOST/PORT, or fail with CI=true")(
      "embedded", po::bool_switch(),
      "stay on the embedded stores (SQLite, in-memory sessions) even when XACT_PG_URI / "
      "XACT_MYSQL_* are set")("dir", po::value(&dir),
                              "data directory (default: a fresh one, removed at exit)")(
      "accounts", po::value(&ao.accounts)->default_value(8), "hot accounts (first start)")(
      "profiles", po::value(&ao.profiles)->default_value(4), "hot profiles (first start)")(
      "sessions", po::value(&ao.sessions)->default_value(4), "hot sessions of each run");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "xact-demo: " << e.what() << "\n" << desc;
    return 2;
  }
  if (vm.count("help") != 0) {
    std::cout << desc;
    return 0;
  }
  if (lo.clients < 1 || ao.accounts < 2 || ao.profiles < 1 || ao.sessions < 1) {
    std::cerr << "xact-demo: need --clients >= 1, --accounts >= 2, --profiles >= 1, "
                 "--sessions >= 1\n";
    return 2;
  }
  ao.use_servers = !vm["embedded"].as<bool>();
  if (require_servers && !ao.use_servers) {
    std::cerr << "xact-demo: --require-servers and --embedded contradict each other\n";
    return 2;
  }
  if (require_servers) {
    const auto set = [](const char* n) { return std::getenv(n) != nullptr && *std::getenv(n); };
    if (!set("XACT_PG_URI") || !set("XACT_MYSQL_HOST") || !set("XACT_MYSQL_PORT")) {
      const bool ci = std::getenv("CI") != nullptr && std::string(std::getenv("CI")) == "true";
      std::cerr << "xact-demo: --require-servers but XACT_PG_URI / XACT_MYSQL_HOST / "
                   "XACT_MYSQL_PORT are not set (scripts/servers.sh start DIR; source "
                   "DIR/env.sh)"
                << (ci ? "" : ": skipped") << "\n";
      return ci ? 1 : 77;
    }
  }
  const bool own_dir = dir.empty();
  ao.dir = own_dir ? fs::temp_directory_path() / ("xact-demo-" + std::to_string(::getpid()))
                   : fs::path(dir);
  xact::set_log_level(xact::LogLevel::warning);  // retried conflicts are logged at info
  std::cout << "directory: " << ao.dir.string() << std::endl;
  int status = 0;
  try {
    if (crash) {
      // A random crash point of the commit protocol, at a random hit.
      std::mt19937_64 rng(std::random_device{}());
      const auto& points = xact::kCoordinatorCrashPoints;
      const std::string point(points[rng() % points.size()]);
      const unsigned hit = 1 + static_cast<unsigned>(rng() % 50);
      std::cout << "crash: run 1 is killed at " << point << " #" << hit << std::endl;
      // The child reports (one byte on a pipe) when its load starts; if the crash point has not
      // fired by a random instant within the load, the parent kills it then (SIGKILL as well).
      int fds[2];
      if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
      const pid_t pid = ::fork();
      if (pid < 0) throw std::runtime_error("fork failed");
      if (pid == 0) {
        ::close(fds[0]);
        int rc = 3;
        try {
          xact::arm_crash_point(point, hit);
          rc = run_phase(ao, lo, {"run 1", true}, fds[1]) == 0 ? 0 : 1;
        } catch (const std::exception& e) {
          std::cerr << "[run 1] failed: " << e.what() << "\n";
        }
        std::fflush(stdout);
        std::_Exit(rc);
      }
      ::close(fds[1]);
      char byte = 0;
      const bool started = ::read(fds[0], &byte, 1) == 1;
      ::close(fds[0]);
      const double fraction = 0.2 + 0.7 * std::uniform_real_distribution<double>()(rng);
      const auto kill_at =
          Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                             fraction * (lo.requests > 0 ? 1.0 : lo.seconds)));
      int ws = 0;
      bool parent_killed = false;
      for (;;) {
        const pid_t w = ::waitpid(pid, &ws, WNOHANG);
        if (w == pid) break;
        if (started && !parent_killed && Clock::now() >= kill_at) {
          ::kill(pid, SIGKILL);
          parent_killed = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL) {
        std::cout << "crash: run 1 was killed ("
                  << (parent_killed ? "SIGKILL from the parent at a random instant: the crash "
                                      "point was not reached by then"
                                    : "SIGKILL at " + point + " #" + std::to_string(hit))
                  << "); restarting" << std::endl;
      } else {
        std::cout << "crash: run 1 ended without being killed (exit status "
                  << (WIFEXITED(ws) ? WEXITSTATUS(ws) : -1) << ")" << std::endl;
        status = 1;
      }
      status |= run_phase(ao, lo, {"run 2", true, own_dir});
    } else {
      status = run_phase(ao, lo, {"run", true, own_dir});
    }
  } catch (const std::exception& e) {
    std::cerr << "xact-demo failed: " << e.what() << "\n";
    status = 1;
  }
  if (own_dir) fs::remove_all(ao.dir);
  std::cout << (status == 0 ? "PASS" : "FAIL") << std::endl;
  return status;
}
