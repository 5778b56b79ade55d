#!/usr/bin/env bash
# The demo (README's main command): installs what is missing, builds only the demo and
# runs it. Arguments are passed to the demo.
#
#   scripts/demo.sh [demo arguments...]
#
# XACT_JOBS=N sets the build parallelism (default 2).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh demo </dev/null

if [[ ! -f examples/CMakeLists.txt ]]; then
  echo "demo.sh: examples/CMakeLists.txt does not exist yet: there is no demo to build" >&2
  exit 1
fi

# Same build directory and type as scripts/test.sh, so the two share their work. The demo needs
# no PostgreSQL or MySQL client library (install-deps.sh demo installs none): those adapters are
# off here, and scripts/test.sh turns them on again.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXACT_BUILD_EXAMPLES=ON \
  -DXACT_WITH_POSTGRES=OFF -DXACT_WITH_MYSQL=OFF
cmake --build build -j "${XACT_JOBS:-2}" --target xact-demo

echo
exec ./build/examples/xact-demo "$@"
