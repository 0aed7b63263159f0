"""A Hypothesis stateful test: random sequences of what a user does to a Session on a tiny model, with invariants
checked after every action.

Actions: freeze / unfreeze by selector, add / switch / disable / enable / merge adapters, train a few steps, train
and get interrupted, resume, save, load back, and actions that must fail (unknown selector, resume with nothing to
resume). Invariants: a selector's parameters really are frozen or trainable after the call; frozen parameters never
move in training; a failed action changes nothing; history, step counter and position agree; the counts agree with
the saved files; a saved-then-loaded session gives identical logits and the same trainable set.

``NBTUNE_HYPOTHESIS_EXAMPLES`` sets the budget: 8 fixed sequences in the suite; on demand (e.g. 300) new random
ones each time.
"""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

import nbtune
from nbtune.core.model.architecture import is_peft_model
from nbtune.core.training.events import StepEnded

from training_helpers import toy_rows

EXAMPLES = int(os.environ.get("NBTUNE_HYPOTHESIS_EXAMPLES", "8"))
ON_DEMAND = "NBTUNE_HYPOTHESIS_EXAMPLES" in os.environ  # a long run explores new sequences; the suite's is fixed
DATA = toy_rows(24)
TRAIN = dict(batch_size=8, lr=1e-3, log=False, max_length=12, epochs=1)
SELECTORS = ["all", "head", "bert.embeddings", "bert.encoder.layer.0", "qkv", "bitfit", "bert.encoder.layer.[-1:]",
             "re:attention.output", "type:LayerNorm"]


def _inputs(s):
    return s.tokenizer(["a good film", "a dull story that felt weak"], return_tensors="pt", padding=True)


def _logits(s):
    s.eval_mode()
    with torch.no_grad():
        return s.model(**_inputs(s)).logits


def _params(s):
    return {n: p.detach().clone() for n, p in s.model.named_parameters()}


def _trainable(s):
    return {n for n, p in s.model.named_parameters() if p.requires_grad}


def _state(s):
    return (_params(s), _trainable(s), list(s.history.rows), s.training.global_step,
            [a.name for a in s.adapters] if is_peft_model(s.model) else [])


class SessionMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        self.s = nbtune.load(TINY["bert"], task="text-classification", num_labels=2)
        self.saves = 0

    def teardown(self):
        self.folder.cleanup()

    # -- freezing ------------------------------------------------------------------------------------
    @rule(selector=st.sampled_from(SELECTORS), unfreeze=st.booleans())
    def change_freezing(self, selector, unfreeze):
        names = set(self.s.select(selector).params)
        (self.s.unfreeze if unfreeze else self.s.freeze)(selector)
        flags = {n: p.requires_grad for n, p in self.s.model.named_parameters() if n in names}
        assert flags and (all(flags.values()) if unfreeze else not any(flags.values())), (selector, flags)

    @rule()
    def unknown_selector_changes_nothing(self):
        before = _state(self.s)
        with pytest.raises(nbtune.SelectorError):
            self.s.freeze("no.such.module")
        self._assert_unchanged(before)

    # -- adapters ------------------------------------------------------------------------------------
    @precondition(lambda self: len(self._adapter_names()) < 2)
    @rule(name=st.sampled_from(["one", "two"]), r=st.sampled_from([2, 4]))
    def add_lora(self, name, r):
        if name in self._adapter_names():
            before = _state(self.s)
            with pytest.raises(nbtune.AdapterError):
                self.s.add_lora(r=r, name=name)
            self._assert_unchanged(before)
            return
        self.s.add_lora(r=r, name=name)
        active = [n for n, p in self.s.model.named_parameters() if "lora_" in n and f".{name}." in n]
        assert active and all(dict(self.s.model.named_parameters())[n].requires_grad for n in active)

    @precondition(lambda self: len(self._adapter_names()) == 2)
    @rule(data=st.data())
    def switch_adapter(self, data):
        name = data.draw(st.sampled_from(self._adapter_names()))
        self.s.set_adapter(name)
        trained = {n for n in _trainable(self.s) if "lora_" in n}
        assert trained and all(f".{name}." in n for n in trained)

    @precondition(lambda self: len(self._adapter_names()) >= 1)
    @rule()
    def disable_and_enable(self):
        with_adapter = _logits(self.s)
        self.s.disable_adapters()
        self.s.enable_adapters()
        assert torch.equal(_logits(self.s), with_adapter)

    @precondition(lambda self: len(self._adapter_names()) >= 1)
    @rule()
    def merge(self):
        before = _logits(self.s)
        self.s.merge()
        assert not is_peft_model(self.s.model)
        assert torch.allclose(_logits(self.s), before, atol=1e-5)

    def _adapter_names(self):
        return [a.name for a in self.s.adapters] if is_peft_model(self.s.model) else []

    # -- training ------------------------------------------------------------------------------------
    def _can_train(self):
        return bool(_trainable(self.s))

    @precondition(lambda self: self._can_train() and not self._interrupted())
    @rule(steps=st.integers(1, 3))
    def train(self, steps):
        frozen = {n: p.detach().clone() for n, p in self.s.model.named_parameters() if not p.requires_grad}
        run = self.s.train(DATA, max_steps=steps, **TRAIN)
        assert run.steps == steps
        now = dict(self.s.model.named_parameters())
        assert all(torch.equal(now[n], t) for n, t in frozen.items())  # frozen parameters never move

    @precondition(lambda self: self._can_train() and not self._interrupted())
    @rule(at=st.integers(1, 2))
    def train_and_interrupt(self, at):
        target = self.s.training.global_step + at

        def interrupt(event, control):
            if isinstance(event, StepEnded) and event.step == target:
                raise KeyboardInterrupt

        run = self.s.train(DATA, max_steps=3, callbacks=[interrupt], **TRAIN)
        assert run.reason == "interrupted" and self.s.training.global_step == target

    def _interrupted(self):
        position = self.s.training.position
        return position is not None and not position.finished

    @precondition(lambda self: self._interrupted())
    @rule()
    def resume(self):
        before = _trainable(self.s)
        if before != set(self.s.training.position.trainable):
            with pytest.raises(nbtune.TrainingError, match="trainable set changed"):
                self.s.train(DATA, max_steps=3, resume=True, **TRAIN)
            return
        self.s.train(DATA, max_steps=3, resume=True, **TRAIN)
        assert self.s.training.position.finished

    @precondition(lambda self: not self._interrupted())
    @rule()
    def resume_with_nothing_to_resume_changes_nothing(self):
        before = _state(self.s)
        with pytest.raises(nbtune.TrainingError):
            self.s.train(DATA, max_steps=3, resume=True, **TRAIN)
        self._assert_unchanged(before)

    # -- save and load -------------------------------------------------------------------------------
    @rule()
    def save_and_load(self):
        self.saves += 1
        folder = os.path.join(self.folder.name, f"save{self.saves}")
        report = self.s.save(folder)
        assert report.trainable_saved == self.s.summary().trainable
        loaded = nbtune.load(folder)
        assert torch.equal(_logits(loaded), _logits(self.s))
        assert _trainable(loaded) == _trainable(self.s)
        assert not loaded.model.training
        self.s = loaded  # carry on with the reloaded session, as after a restart

    # -- invariants ------------------------------------------------------------------------------------
    def _assert_unchanged(self, before):
        weights, trainable, rows, step, adapters = before
        now = _params(self.s)
        assert now.keys() == weights.keys() and all(torch.equal(now[n], weights[n]) for n in now)
        assert _trainable(self.s) == trainable and self.s.history.rows == rows
        assert self.s.training.global_step == step

    @invariant()
    def history_and_steps_agree(self):
        state = self.s.training
        assert len(state.history.losses()) == state.global_step
        if state.position is not None and state.position.run_step:
            assert state.position.run_step <= state.position.total_steps

    @invariant()
    def counts_agree(self):
        assert self.s.summary().trainable == sum(p.numel() for p in self.s.model.parameters() if p.requires_grad)

    @invariant()
    def weights_finite(self):
        assert all(torch.isfinite(p).all() for p in self.s.model.parameters())


TINY: dict = {}


def test_random_user_sessions_keep_their_invariants(tiny_dirs):
    TINY.update(tiny_dirs)
    run_state_machine_as_test(SessionMachine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=10, deadline=None, derandomize=not ON_DEMAND, database=None,
        suppress_health_check=list(HealthCheck)))
