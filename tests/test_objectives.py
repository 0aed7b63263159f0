"""Objectives apart from tasks: the registry, settings of their own (routed from train(...) and checked before
anything changes), a task that names its objective, and batches that carry more than tensors."""

from __future__ import annotations

import pytest
import torch

import nbtune
from nbtune.core.common.errors import TrainConfigError
from nbtune.core.data.batching import split_batch, to_device
from nbtune.core.objectives import get_objective, objective_names, task_and_objective
from nbtune.core.training.config import TrainConfig

PREFS = [{"prompt": "was the film good?", "chosen": "yes it was a lovely film", "rejected": "no it was dull"}] * 4


def test_the_registry_holds_the_built_in_objectives_with_their_settings():
    assert {"supervised", "dpo", "orpo"} <= set(objective_names())
    assert get_objective("dpo").setting_names() == ["beta"] and get_objective("supervised").setting_names() == []
    with pytest.raises(TrainConfigError, match="did you mean 'dpo'"):
        get_objective("dop")
    assert task_and_objective("orpo") == ("preference", "orpo")
    assert task_and_objective("text-classification") == ("text-classification", None)


def test_objective_settings_are_routed_out_of_trainconfig_and_checked():
    cfg = TrainConfig.from_kwargs(beta=0.2, epochs=1)
    assert cfg.objective_settings == {"beta": 0.2} and not hasattr(cfg, "beta")
    with pytest.raises(TrainConfigError, match="Unknown training setting 'betta'.*did you mean 'beta'"):
        TrainConfig.from_kwargs(betta=0.2)
    with pytest.raises(TrainConfigError, match="supervised objective's \\(none\\)"):
        TrainConfig.from_kwargs(objective="supervised", beta=0.2)
    with pytest.raises(TrainConfigError, match="beta must be > 0"):
        get_objective("dpo").make_settings({"beta": -1})


def test_a_bad_objective_setting_changes_nothing(chat_dir):
    s = nbtune.load(chat_dir)
    before = {n: p.detach().clone() for n, p in s.model.named_parameters()}
    with pytest.raises(TrainConfigError, match="beta must be > 0"):
        s.train(PREFS, task="dpo", beta=-1.0, max_steps=1, log=False, save_run=False)
    assert s.task == "causal-lm" and s.objective is None  # the task did not switch
    assert all(torch.equal(p, before[n]) for n, p in s.model.named_parameters()) and not s.history.rows
    with pytest.raises(TrainConfigError, match="trains preference models; this session's task is causal-lm"):
        s.train(["some text"], objective="orpo", max_steps=1, log=False, save_run=False)


def test_preference_pairs_refuse_the_supervised_objective_with_the_way_out(chat_dir):
    s = nbtune.load(chat_dir, task="dpo")
    assert (s.task, s.objective) == ("preference", "dpo")
    with pytest.raises(nbtune.TaskError, match="objective='dpo' or 'orpo'"):
        s.train(PREFS, objective="supervised", max_steps=1, log=False, save_run=False)


def test_the_saved_objective_comes_back(chat_dir, tmp_path):
    s = nbtune.load(chat_dir, task="orpo")
    s.save(tmp_path / "saved")
    again = nbtune.load(tmp_path / "saved")
    assert (again.task, again.objective) == ("preference", "orpo")


def test_micro_batches_cut_tensors_and_per_example_lists_alike():
    batch = {"x": torch.arange(6), "prompts": list("abcdef"), "temperature": 0.7}
    parts = split_batch(batch, 3)
    assert [p["prompts"] for p in parts] == [["a", "b"], ["c", "d"], ["e", "f"]]
    assert [p["x"].tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]
    assert all(p["temperature"] == 0.7 for p in parts)
    moved = to_device(batch, torch.device("cpu"))
    assert moved["prompts"] is batch["prompts"] and moved["x"].device.type == "cpu"


def test_completion_offers_objectives_and_their_settings(shell):
    shell.run_cell("%load_ext nbtune")
    _, matches = shell.complete("", "%nbtune train $df ", cursor_pos=len("%nbtune train $df "))
    assert "beta=" in matches and "objective=orpo" in matches and "objective_settings=" not in matches
