#!/usr/bin/env bash
# Runs the whole test suite in its own environment (.venv). Extra arguments go to pytest.
source "$(dirname "$0")/_env.sh"
# The browser tests drive Debian's chromium (no browser download). Install it where this machine allows it;
# where it cannot, tests/test_browser.py skips with one line saying so.
if [ ! -x /usr/bin/chromium ] && [ -z "${NBTUNE_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "nbtune: installing chromium for the browser tests (apt-get)" >&2
    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
      || echo "nbtune: could not install chromium; the browser tests will be skipped" >&2
  else
    echo "nbtune: no chromium and no root apt-get here; the browser tests will be skipped" >&2
  fi
fi
source "$(dirname "$0")/_vision_env.sh"
status=0
"$PY" -m pytest "$@" || status=$?
# the torchvision/timm tests, in their own environment (see _vision_env.sh); in the main one they skip
"$VPY" -m pytest -p no:cacheprovider "$@" tests/test_vision_libraries.py || status=$?
exit $status
