#!/usr/bin/env bash
# Runs the whole test suite in its own environment (.venv). Extra arguments go to pytest.
source "$(dirname "$0")/_env.sh"
exec "$PY" -m pytest "$@"
