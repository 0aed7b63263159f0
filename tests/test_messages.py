"""Messages a person can act on: every method, option or command an nbtune message suggests exists; presets do not
guess; a selector that matches nothing lists what its form could match."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import nbtune
from nbtune.core.adapters import get_method, method_names
from nbtune.core.training.config import TrainConfig
from nbtune.magics.magic import subcommands

PACKAGE = Path(nbtune.__file__).parent


def _strings(node: ast.AST) -> list[str]:
    """The text of string literals under ``node``; an f-string's placeholders become '{}'."""
    out = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in sub.values))
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            out.append(sub.value)
    return out


def _messages() -> list[tuple[str, str]]:
    """(file:line, text) of every raised error's message and every note/message nbtune appends for the user."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                parts = _strings(node.exc)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "append" and isinstance(node.func.value, (ast.Attribute, ast.Name))
                  and getattr(node.func.value, "attr", getattr(node.func.value, "id", "")) in ("messages", "notes")):
                parts = _strings(node)
            else:
                continue
            # adjacent literals are one message: join them so a suggestion split over lines is read whole
            found.append((f"{path.relative_to(PACKAGE)}:{node.lineno}", "".join(parts)))
    return found


def _params(fn) -> set[str]:
    return set(inspect.signature(fn).parameters)


TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)} | _params(nbtune.Session.train)
LOAD_KEYS = _params(nbtune.load)


def _keys(args: str) -> list[str]:
    return re.findall(r"\b(\w+)=", args)


def test_every_suggested_method_option_and_command_exists():
    messages = _messages()
    assert len(messages) > 150  # the scan really reads nbtune's messages
    wrong = []
    for where, text in messages:
        for name in re.findall(r"\bs\.(\w+)\(", text):
            if not hasattr(nbtune.Session, name):
                wrong.append(f"{where}: s.{name}() does not exist")
        for name in re.findall(r"\bnbtune\.(\w+)\(", text):
            if not hasattr(nbtune, name):
                wrong.append(f"{where}: nbtune.{name}() does not exist")
        for args in re.findall(r"\btrain\(([^)]*)\)", text):
            wrong += [f"{where}: train({k}=) is no setting" for k in _keys(args) if k not in TRAIN_KEYS]
        for args in re.findall(r"\bload\(([^)]*)\)", text):
            wrong += [f"{where}: load({k}=) is no argument" for k in _keys(args) if k not in LOAD_KEYS]
        for method, args in re.findall(r"\badd_(\w+)\(([^)]*)\)", text):
            if not hasattr(nbtune.Session, f"add_{method}"):
                wrong.append(f"{where}: s.add_{method}() does not exist")
            elif method in method_names():
                accepted = set(get_method(method).accepted_keys) | {"name"}
                wrong += [f"{where}: add_{method}({k}=) is no setting" for k in _keys(args) if k not in accepted]
        for command in re.findall(r"%nbtune (\w+)", text):
            if command not in subcommands():
                wrong.append(f"{where}: %nbtune {command} is no command")
    assert not wrong, "\n".join(wrong)


class _NormLast(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.out, self.norm = nn.Linear(4, 4), nn.Linear(4, 2), nn.LayerNorm(2)

    def forward(self, x):
        return self.norm(self.out(self.body(x)))


def test_head_preset_never_guesses(tmp_path):
    s = nbtune.load(_NormLast())
    before = [n for n, p in s.model.named_parameters() if p.requires_grad]
    s.freeze("all")
    with pytest.raises(nbtune.SelectorError, match="found no task head.*Name the head module.*norm, out, body"):
        s.unfreeze("head")
    assert s.trainable_parameters() == [] and before  # nothing changed
    seq = nbtune.load(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    seq.freeze("all")
    seq.unfreeze("head")  # a Sequential's last Linear is its output layer by construction
    assert seq.trainable_parameters() == ["2.weight", "2.bias"]


def test_presets_that_cannot_apply_say_what_to_use_instead():
    s = nbtune.load(nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False)))
    with pytest.raises(nbtune.SelectorError, match="'bitfit' trains biases.*has none.*add_lora"):
        s.unfreeze("bitfit")
    with pytest.raises(nbtune.SelectorError, match="'embeddings' found no nn.Embedding.*Name the input layer"):
        s.unfreeze("embeddings")
    with pytest.raises(nbtune.SelectorError, match="'qkv' found no attention"):
        s.unfreeze("qkv")


@pytest.mark.parametrize("selector, pattern", [
    ("type:Conv2d", "Module types in this model: LayerNorm, Linear\\."),
    ("type:Linaer", "Closest: Linear"),
    ("bodyy", "Closest names: body"),
])
def test_selectors_that_match_nothing_list_what_exists(selector, pattern):
    s = nbtune.load(_NormLast())
    with pytest.raises(nbtune.SelectorError, match=pattern):
        s.freeze(selector)


def test_range_selector_lists_the_numbered_containers(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    with pytest.raises(nbtune.SelectorError, match=r"Numbered containers: bert.encoder.layer \(0-1\)"):
        s.freeze("decoder.layers.[0-1]")
    assert torch.is_tensor(next(s.model.parameters()))
