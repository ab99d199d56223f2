#!/usr/bin/env bash
# The main job on a fresh machine: set-up (idempotent), then the kernel benchmark on this
# machine's adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/panther.js bench kernels "$@"
