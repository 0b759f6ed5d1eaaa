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

# Where the quickstart model comes from: the Hub (one request, 10 s at most), else the local
# Hugging Face cache. Without the Hub, a cached model runs in offline mode: transformers would
# otherwise retry the Hub for every file before using the cache.
SOURCE=$(.venv/bin/python - <<'PY' 2>/dev/null || echo none
from huggingface_hub import model_info, try_to_load_from_cache
MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
try:
    model_info(MODEL, timeout=10)
    print("hub")
except Exception:
    print("cache" if isinstance(try_to_load_from_cache(MODEL, "config.json"), str) else "none")
PY
)
if [ "$SOURCE" = cache ] && [ -z "${HF_HUB_OFFLINE:-}" ]; then
  echo "The Hugging Face Hub is not reachable from here; the quickstart model is in the local" >&2
  echo "cache, so it runs in offline mode (HF_HUB_OFFLINE=1)." >&2
  export HF_HUB_OFFLINE=1
fi
if [ "$SOURCE" != none ]; then
  .venv/bin/koalign run examples/quickstart.yaml -o runs/quickstart --limit "$LIMIT"
  echo "data: runs/quickstart/export (dataset card: runs/quickstart/export/README.md)"
else
  echo "The Hugging Face Hub is not reachable from here and the quickstart model is not in the" >&2
  echo "local cache, so it cannot be had. The offline demo above passed. To run the real" >&2
  echo "pipeline, use a local model:" >&2
  echo "  .venv/bin/koalign run examples/quickstart.yaml -o runs/quickstart --limit $LIMIT \\" >&2
  echo "      --set models.qwen.model=/path/to/model --set models.qwen-judge.model=/path/to/model" >&2
  echo "or a server (examples/vllm.yaml) or a hosted API (examples/hosted.yaml)." >&2
fi
