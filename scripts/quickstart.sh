#!/usr/bin/env bash
# Install koalign into .venv (created if missing) and run its main job.
#
#   bash scripts/quickstart.sh            # install, check the install offline, run the quickstart
#   LIMIT=60 bash scripts/quickstart.sh   # more seed candidates (default 20)
#
# The quickstart pipeline (examples/quickstart.yaml) runs every role on
# Qwen/Qwen2.5-1.5B-Instruct from the Hugging Face Hub, in-process: a GPU makes it fast; on a
# CPU it is slow but works. Without Hub access, point it at a local copy of any chat model:
#   .venv/bin/koalign run examples/quickstart.yaml -o runs/quickstart \
#       --set models.qwen.model=/path/to/model --set models.qwen-judge.model=/path/to/model
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LIMIT=${LIMIT:-20}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch is pinned on the same line so no dependency can pull a CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[all]"

.venv/bin/koalign locale check
# End-to-end check of the installation: the whole pipeline on a tiny random model, offline.
.venv/bin/koalign demo -o runs/demo

if .venv/bin/python - <<'PY' 2>/dev/null
import sys
from huggingface_hub import model_info
try:
    model_info("Qwen/Qwen2.5-1.5B-Instruct", timeout=10)
except Exception:
    sys.exit(1)
PY
then
  .venv/bin/koalign run examples/quickstart.yaml -o runs/quickstart --limit "$LIMIT"
  echo "data: runs/quickstart/export (dataset card: runs/quickstart/export/README.md)"
else
  echo "The Hugging Face Hub is not reachable from here, so the quickstart model cannot be" >&2
  echo "downloaded. The offline demo above passed. To run the real pipeline, use a local model:" >&2
  echo "  .venv/bin/koalign run examples/quickstart.yaml -o runs/quickstart --limit $LIMIT \\" >&2
  echo "      --set models.qwen.model=/path/to/model --set models.qwen-judge.model=/path/to/model" >&2
  echo "or a server (examples/vllm.yaml) or a hosted API (examples/hosted.yaml)." >&2
fi
