"""``s.lr_find``: a range test that suggests a rate and leaves the session exactly as it was."""

from __future__ import annotations

import random

import numpy as np
import torch
from IPython.utils.capture import capture_output

import nbtune

from training_helpers import toy_rows


def _everything(s):
    return ({n: p.detach().clone() for n, p in s.model.named_parameters()},
            {n: b.detach().clone() for n, b in s.model.named_buffers()},
            {n for n, p in s.model.named_parameters() if p.requires_grad})


def test_lr_find_suggests_a_rate_and_changes_nothing(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    s.train(toy_rows(32), max_steps=2, batch_size=8, log=False)  # an optimizer and a history to keep
    before = _everything(s)
    optimizer_state = {k: v.clone() for group in s.training.optimizer.state.values() for k, v in group.items()
                       if torch.is_tensor(v)}
    rows = list(s.history.rows)
    torch.manual_seed(9), random.seed(9), np.random.seed(9)
    expected = (torch.rand(2), random.random(), np.random.rand())
    torch.manual_seed(9), random.seed(9), np.random.seed(9)

    result = s.lr_find(toy_rows(96), steps=80, batch_size=8)

    now = (torch.rand(2), random.random(), np.random.rand())
    assert torch.equal(now[0], expected[0]) and now[1:] == expected[1:]  # the random state is put back too
    assert len(result.lrs) >= 20 and result.lrs == sorted(result.lrs)
    assert result.suggestion is not None and result.lrs[0] < result.suggestion < result.lrs[-1]
    weights, buffers, trainable = _everything(s)
    assert all(torch.equal(weights[n], before[0][n]) for n in weights)
    assert all(torch.equal(buffers[n], before[1][n]) for n in buffers) and trainable == before[2]
    after_state = {k: v for group in s.training.optimizer.state.values() for k, v in group.items() if torch.is_tensor(v)}
    assert all(torch.equal(after_state[k], optimizer_state[k]) for k in optimizer_state)
    assert s.history.rows == rows and not s.model.training
    assert "heuristic" in repr(result) and "suggested learning rate" in repr(result)


def test_lr_find_in_a_notebook_shows_its_plot_once(shell, tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    shell.user_ns["s_lr"], shell.user_ns["rows_lr"] = s, toy_rows(48)
    with capture_output() as cap:
        shell.run_cell("from IPython.display import display\ndisplay(s_lr.lr_find(rows_lr, steps=20, batch_size=8))")
    data = cap.outputs[0].data
    assert data["text/html"].count("data:image/png;base64") == 1 and "image/png" not in data
    assert "lr_find:" in data["text/plain"]
