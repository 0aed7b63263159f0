# Sourced by scripts/test.sh: a second environment (.venv-vision) for the tests that need torchvision or timm.
# PyPI's torchvision is built against PyPI's torch and fails to import beside the CPU wheel the main environment
# pins (torch 2.13.0: 'operator torchvision::nms does not exist'), so these tests get a torch/torchvision pair of
# their own (a CUDA build, which runs on the CPU; about a minute and 5.5 GB from this machine's wheel cache) and
# the rest of the suite keeps the pinned CPU wheel.
VISION_VENV="$ROOT/.venv-vision"
VPY="$VISION_VENV/bin/python"
if needs_install "$VISION_VENV"; then
  echo "nbtune: installing torch, torchvision and timm into $VISION_VENV" >&2
  "$VPY" -m pip install -q torch==2.14.1 torchvision==0.29.1
  grep -v -E '^torch==' requirements/constraints.txt > "$VISION_VENV/constraints.txt"
  "$VPY" -m pip install -q -c "$VISION_VENV/constraints.txt" -e . "timm>=1.0" pytest scikit-learn datasets ipython
  echo "$WANT" > "$VISION_VENV/.nbtune-stamp"
fi
