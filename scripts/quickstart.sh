#!/usr/bin/env bash
# Install koalign into .venv (created if missing) and run its main job.
# Usage: bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[all]"
.venv/bin/koalign locale check
.venv/bin/koalign taxonomy
