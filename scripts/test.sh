#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up (idempotent), type check, then vitest on
# the real WebGPU adapter (lavapipe where there is no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc --noEmit -p .
npx vitest run "$@"
