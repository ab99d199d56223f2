#!/usr/bin/env bash
# The main job on a fresh machine: set-up (idempotent), then a local pretraining on the
# default generated data set on this machine's adapter, with progress and final metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/panther.js pretrain "$@"
