"""The %nbtune line parser as plain functions: fixed typing rules (no YAML surprises), comments, settings."""

from __future__ import annotations

import pytest

from nbtune import MagicUsageError
from nbtune.magics.parse import check_keys, resolve_ref, settings, split, typed


@pytest.mark.parametrize("text, value", [
    ("8", 8), ("-3", -3), ("5e-4", 5e-4), ("0.5", 0.5), (".5", 0.5), ("true", True), ("False", False),
    ("none", None), ("qkv", "qkv"), ("all-linear", "all-linear"), ("no", "no"), ("yes", "yes"), ("on", "on"),
    ("[no,yes]", ["no", "yes"]), ("[negative, positive]", ["negative", "positive"]), ("[1, 2.5, x]", [1, 2.5, "x"]),
    ("[]", []), ("'08'", "08"), ("2024-01-01", "2024-01-01"), ("1_000", "1_000"), ("$df", "$df"),
])
def test_values_are_typed_by_fixed_rules(text, value):
    assert typed(text) == value and type(typed(text)) is type(value)


def test_comments_and_quotes():
    assert split("lora r=8 targets=qkv  # the usual") == ["lora", "r=8", "targets=qkv"]
    assert split("# only a comment") == []
    assert split('freeze "name with # inside" re:layer#1') == ["freeze", "name with # inside", "re:layer#1"]
    with pytest.raises(MagicUsageError, match="quotes"):
        split('freeze "unclosed')


def test_settings_and_positionals():
    words = split("train $df eval=$dev epochs=2 --lr 5e-4 --dry-run labels=[no,yes]")
    positional, found = settings(words)
    assert positional == ["train", "$df"]
    assert found == {"eval": "$dev", "epochs": 2, "lr": 5e-4, "dry_run": True, "labels": ["no", "yes"]}
    assert settings(["re:layer\\.(10|11)=x"])[0] == ["re:layer\\.(10|11)=x"]  # a regex selector is no setting


def test_references_and_key_checks():
    assert resolve_ref("$x", {"x": 3}) == 3 and resolve_ref("x", {}) == "x"
    with pytest.raises(MagicUsageError, match=r"\$y is not defined"):
        resolve_ref("$y", {})
    with pytest.raises(MagicUsageError, match="does not take 'rank'.*It takes: r, alpha"):
        check_keys({"rank": 8}, ["r", "alpha"], "lora")
