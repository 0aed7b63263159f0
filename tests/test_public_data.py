"""The tutorials' public datasets: hub ids that load without loading scripts, converted to the tutorials'
columns, and the shipped sample when the hub cannot be reached (said in one line)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from nbtune.examples import load_public, public
from nbtune.examples.public import DATASETS, PARQUET_CONVERSION, WNUT_TAGS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_offline_gives_the_shipped_sample_and_says_so(name, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    called = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: called.append(a))
    split = next(iter(DATASETS[name].splits))
    table = load_public(name, split, n=5)
    line = capsys.readouterr().out.strip()
    assert not called and len(table) == 5 and "built-in sample" in table.attrs["source"]
    assert line.count("\n") == 0 and "HF_HUB_OFFLINE is set" in line and "rough" in line


def test_sample_splits_are_disjoint_and_in_the_tutorial_columns(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train, dev = load_public("sst2", "train", verbose=False), load_public("sst2", "dev", verbose=False)
    assert set(train["label"]) == {0, 1} and not set(train["sentence"]) & set(dev["sentence"])
    ner = load_public("wnut17", "train", verbose=False)
    assert all(len(t) == len(g) for t, g in zip(ner["tokens"], ner["tags"]))
    assert {tag for tags in ner["tags"] for tag in tags} <= set(WNUT_TAGS)
    maths = load_public("gsm8k", "test", verbose=False)
    for answer in maths["answer"]:  # GSM8K's format: worked steps, then "#### N"; the arithmetic is right
        for expression, result in re.findall(r"<<([^=]+)=([\d.]+)>>", answer):
            assert eval(expression) == float(result)
        assert answer.rsplit("#### ", 1)[1].isdigit()
    tldr = load_public("scitldr", "dev", verbose=False)
    assert all(isinstance(s, list) and isinstance(t, list) for s, t in zip(tldr["source"], tldr["target"]))


def _reachable_hub(monkeypatch):
    """As where the hub answers: no offline switch, and the reachability probe says yes."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(public, "hub_offline_reason", lambda switches=(): None)


def test_hub_rows_are_converted_and_script_era_datasets_use_the_parquet_conversion(monkeypatch, capsys):
    _reachable_hub(monkeypatch)
    asked = []
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=WNUT_TAGS))})

    def fake_load(path, config=None, split=None, revision=None):
        asked.append((path, config, split, revision))
        return datasets.Dataset.from_dict({"tokens": [["Paris", "rocks"]], "ner_tags": [[7, 0]]}, features=features)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    table = load_public("wnut17", "test")
    assert asked == [("leondz/wnut_17", "wnut_17", "test", PARQUET_CONVERSION)]
    assert table["tags"][0] == ["B-location", "O"] and "hub (leondz/wnut_17)" in capsys.readouterr().out


def test_an_unreachable_hub_falls_back_with_the_reason(monkeypatch, capsys):
    _reachable_hub(monkeypatch)  # reachable, but the dataset call fails

    def refuse(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    table = load_public("gsm8k", "train", n=3)
    assert len(table) == 3 and "ConnectionError: Couldn't reach" in capsys.readouterr().out


def test_unknown_names_and_splits_are_refused_clearly():
    with pytest.raises(ValueError, match="choose one of sst2"):
        load_public("imdb")
    with pytest.raises(ValueError, match="no split 'dev'; choose one of train, test"):
        load_public("gsm8k", "dev")


def test_no_notebook_reads_the_shared_folder():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        sources = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        assert "shared/data" not in sources and "DATA = " not in sources, path.name


def test_offline_without_a_switch_falls_back_at_once_without_retries(tmp_path):
    """No HF_*_OFFLINE set and the hub's host refuses: one line and the sample, not eleven "Retrying" lines and
    25 s; a model id fails with one error that says offline."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE") and "PROXY" not in k.upper()}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused
    code = ("import nbtune\nfrom nbtune.examples.public import load_public\n"
            "print(len(load_public('sst2', n=4)))\n"
            "try:\n    nbtune.load('org/some-model')\nexcept nbtune.ModelLoadError as e:\n    print('ERR', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Retrying" not in out and "127.0.0.1 cannot be reached" in out
    assert [line for line in proc.stdout.splitlines() if "built-in sample" in line][0].startswith("SST-2")
    assert "ERR Could not load 'org/some-model'" in out and "offline: 127.0.0.1 cannot be reached" in out
