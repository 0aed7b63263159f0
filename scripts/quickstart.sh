#!/usr/bin/env bash
# The main job: the quickstart end to end on the embedded default model (all-MiniLM-L6-v2), in its own environment.
source "$(dirname "$0")/_env.sh"
exec "$PY" -m nbtune.quickstart "$@"
