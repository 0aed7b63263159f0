"""``low_host_memory=True``: glibc's fixed mmap threshold gives freed tensors back to the system. Each case runs in
a fresh process, since the setting is process-wide and cannot be undone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nbtune.core.training.host_allocator import _glibc

needs_glibc = pytest.mark.skipif(_glibc() is None, reason="the lever tunes glibc's allocator")

# Allocate, touch and free a 24 MiB tensor a few times; report how much of it the process still holds. glibc's
# dynamic threshold rises to the size of the first block freed, so the later ones come from the heap and stay there.
RETAINED = """
import json, os, sys, torch
from nbtune.core.training.host_allocator import limit_heap_growth
note = limit_heap_growth() if sys.argv[1] == "limited" else None
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
torch.ones(16).sum()  # torch's own lazy set-up (thread pool, dispatch tables) before the count starts
before = rss()
for _ in range(4):
    block = torch.ones(6 << 20)
    del block
print(json.dumps({"retained_mib": (rss() - before) / 2**20, "note": note}))
"""


def _retained(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", RETAINED, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_glibc
def test_limited_process_gives_freed_blocks_back_and_the_default_does_not():
    default, limited = _retained("default"), _retained("limited")
    assert default["retained_mib"] >= 20  # the control: without the lever the freed block stays resident
    assert limited["retained_mib"] < 4
    assert "8 MiB and up go back to the system" in limited["note"]


TRAIN = """
import json, sys, torch, nbtune
s = nbtune.load(sys.argv[1], task="text-classification", num_labels=2)
rows = [{"text": "good film" if i % 2 else "bad film", "label": i % 2} for i in range(32)]
run = s.train(rows, epochs=1, batch_size=8, log=False, save_run=False, low_host_memory=True)
print(json.dumps({"messages": run.messages, "steps": run.steps}))
"""


@needs_glibc
def test_train_with_low_host_memory_says_so_and_trains(tiny_dirs):
    out = subprocess.run([sys.executable, "-c", TRAIN, str(tiny_dirs["bert"])], capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["steps"] == 4
    assert any(m.startswith("low_host_memory:") for m in result["messages"])


def test_without_glibc_the_setting_explains_itself(monkeypatch):
    from nbtune.core.training import host_allocator

    monkeypatch.setattr(host_allocator, "_glibc", lambda: None)
    assert "has no effect here" in host_allocator.limit_heap_growth()
