"""%nbtune and %%finetune in an in-process IPython shell whose run_cell raises on errors."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import nbtune

from training_helpers import toy_rows


@pytest.fixture
def ip(shell, tiny_dirs):
    magics = shell.magics_manager.registry["NbtuneMagics"]
    magics.sessions.clear()
    magics.current = None
    magics.widgets = False
    shell.user_ns.update(bert_dir=str(tiny_dirs["bert"]), train_df=pd.DataFrame(toy_rows(48)),
                         dev_df=pd.DataFrame(toy_rows(16, seed=1)))
    torch.manual_seed(0)
    return shell


def magics_of(ip):
    return ip.magics_manager.registry["NbtuneMagics"]


def test_line_magic_walkthrough(ip, tmp_path):
    ip.run_cell("%nbtune load $bert_dir --task text-classification --num-labels 2")
    s = ip.run_cell("%nbtune session").result
    assert isinstance(s, nbtune.Session) and s.task == "text-classification"
    tree = ip.run_cell("%nbtune layers attention --depth 7").result
    assert "bert.encoder.layer.0.attention.self.query" in tree.names()
    ip.run_cell("%nbtune freeze all")
    assert s.trainable_parameters() == []
    report = ip.run_cell("%nbtune unfreeze head qkv").result
    assert report.trainable_after == 66 + (32 * 32 + 32) + 2 * 3 * (32 * 32 + 32)  # head + pooler + q/k/v
    ip.run_cell("%nbtune freeze qkv")
    ip.run_cell("%nbtune lora r=4 alpha=8 targets=qkv")
    assert s.adapters[0].settings["r"] == 4
    with capture_output() as cap:
        ip.run_cell("from IPython.display import display\ndisplay(_)")
    assert "nbtune-summary" in cap.outputs[0].data["text/html"]
    summary = ip.run_cell("%nbtune summary batch_size=4 seq_len=32").result
    assert summary.memory.batch_size == 4 and summary.trainable == s.summary().trainable
    run = ip.run_cell("%nbtune train $train_df eval=$dev_df epochs=2 lr=5e-3 batch_size=8").result
    assert run.steps == 12 and run.config["lr"] == 5e-3 and "accuracy" in run.metrics
    with capture_output() as cap:
        metrics = ip.run_cell("%nbtune eval $dev_df").result
    assert "accuracy" in metrics and "accuracy" in cap.stdout
    ip.run_cell(f"%nbtune save {tmp_path / 'saved'}")
    assert (tmp_path / "saved" / "nbtune.json").exists()
    assert ip.run_cell("%nbtune targets").result["query"].count == 2


def test_head_and_other_adapters_by_magic(ip):
    ip.run_cell("%nbtune load $bert_dir --task text-classification")
    change = ip.run_cell("%nbtune head labels=[neg,neu,pos]").result
    assert change.new_shape == (3, 32)
    ip.run_cell("%nbtune prompt n_tokens=3 init_text='good or bad'")
    assert magics_of(ip).session().adapters[0].method == "prompt"


def test_several_sessions(ip):
    ip.run_cell("%nbtune load $bert_dir --task text-classification --name a")
    ip.run_cell("%nbtune load $bert_dir --task text-classification --name b")
    ip.run_cell("%nbtune -s a freeze all")
    m = magics_of(ip)
    assert m.current == "b" and m.sessions["a"].trainable_parameters() == []
    assert m.sessions["b"].trainable_parameters()
    ip.run_cell("%nbtune use a")
    assert m.current == "a"


@pytest.mark.parametrize(
    "line, pattern",
    [
        ("%nbtune layers", "No session yet"),
        ("%nbtune frezze all", "did you mean 'freeze'"),
        ("%nbtune load ./no/such/folder", "No such file or folder"),
        ("%nbtune load $nope", r"\$nope is not defined"),
    ],
)
def test_user_errors_are_one_clear_message(ip, line, pattern):
    with pytest.raises(UsageError, match=pattern):
        ip.run_cell(line)


def test_errors_after_loading(ip):
    ip.run_cell("%nbtune load $bert_dir --task text-classification")
    for line, pattern in [("%nbtune freeze encoder.layer.*.atention", "bert.encoder.layer.*.attention"),
                          ("%nbtune lora r=0", "positive integer"), ("%nbtune lora rank=8", "does not take 'rank'"),
                          ("%nbtune train $train_df learning_rate=1", "Unknown training setting 'learning_rate'"),
                          ("%nbtune train $missing_df", r"\$missing_df is not defined")]:
        with pytest.raises(UsageError, match=pattern):
            ip.run_cell(line)


def test_a_bug_still_shows_its_traceback(ip, monkeypatch):
    ip.run_cell("%nbtune load $bert_dir --task text-classification")
    monkeypatch.setattr(nbtune.Session, "summary", lambda self, *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ip.run_cell("%nbtune summary")


def test_config_defaults(ip):
    ip.run_cell("%config NbtuneMagics.batch_size = 12")
    try:
        ip.run_cell("%nbtune load $bert_dir --task text-classification")
        run = ip.run_cell("%nbtune train $train_df epochs=1").result
        assert run.config["batch_size"] == 12 and run.steps == 4
    finally:
        ip.run_cell("%config NbtuneMagics.batch_size = 16")


def test_help_and_completion(ip):
    doc = ip.find_line_magic("nbtune").__doc__
    assert "%nbtune load" in doc and "Selectors" in doc
    assert "-o OUTPUT" in ip.find_cell_magic("finetune").__doc__
    with capture_output() as cap:
        ip.run_cell("%nbtune help")
    assert "%nbtune train" in cap.stdout
    _, matches = ip.complete("", "%nbtune fre", cursor_pos=len("%nbtune fre"))
    assert "freeze" in matches


RECIPE = """model: $bert_dir
task: text-classification
num_labels: 2
data: {train: $train_df, eval: $dev_df, text: sentence, label: label}
freeze: [all]
unfreeze: [head]
lora: {r: 4, alpha: 8, targets: qkv}
train: {epochs: 2, lr: 5e-3, batch_size: 8}
"""


def test_finetune_cell(ip):
    result = ip.run_cell(f"%%finetune -o run1\n{RECIPE}").result
    assert ip.user_ns["run1"] is result
    assert result.run.steps == 12 and result.before and result.after
    s = result.session
    assert s.adapters[0].method == "lora" and magics_of(ip).session() is s
    trainable = set(s.trainable_parameters())
    assert all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any("pooler.modules_to_save" in n for n in trainable)  # the head's pooler trains with the adapter
    assert "nbtune-recipe" in result._repr_html_() and "before" in repr(result)


def test_finetune_dry_run_trains_nothing(ip):
    with capture_output() as cap:
        out = ip.run_cell(f"%%finetune --dry-run -o plan\n{RECIPE}").result
    assert out is None
    plan = ip.user_ns["plan"]
    assert plan.run is None and len(plan.session.history) == 0
    assert any("nbtune-summary" in o.data.get("text/html", "") for o in cap.outputs)


@pytest.mark.parametrize(
    "body, pattern",
    [
        ("model: $bert_dir\nfreze: [all]\n", "Unknown key 'freze' .*did you mean 'freeze'.*Valid keys"),
        ("model: $bert_dir\ntask: text-classification\ndata: {train: $nowhere}\n", r"\$nowhere .* not defined"),
        ("model: $bert_dir\nlora: {rank: 8}\n", "Unknown key 'rank'.* in lora"),
        ("model: $bert_dir\ntrain: {epoch: 1}\n", "'epoch'.*did you mean 'epochs'"),
        ("model: [unclosed\n", "not valid YAML at line 1: 'model: \\[unclosed'"),
        ("model: $bert_dir\ntrain: {epochs: 2, lr: 1e-3 # fast}\n",
         "at line 2: 'train: .*'#' starts a comment in YAML.*quotes"),
        ("task: text-classification\n", "needs a model"),
        ("model: $bert_dir\nlora: {}\nprompt: {}\n", "One adapter per recipe"),
    ],
)
def test_finetune_errors(ip, body, pattern):
    with pytest.raises(UsageError, match=pattern):
        ip.run_cell(f"%%finetune\n{body}")


def test_python_api_is_the_same_path(tiny_dirs):
    recipe = RECIPE.replace("$bert_dir", str(tiny_dirs["bert"]))
    result = nbtune.finetune(recipe, {"train_df": pd.DataFrame(toy_rows(48)), "dev_df": pd.DataFrame(toy_rows(16))},
                             log=False)
    assert result.run.steps == 12 and result.after["accuracy"] >= 0


@pytest.mark.parametrize("line, method", [("%nbtune prefix n_tokens=3", "prefix"), ("%nbtune ptuning n_tokens=3", "ptuning"),
                                          ("%nbtune ia3", "ia3"), ("%nbtune prompt n_tokens=2", "prompt")])
def test_every_adapter_subcommand(ip, line, method):
    ip.run_cell("%nbtune load $bert_dir --task text-classification --num-labels 2")
    summary = ip.run_cell(line).result
    assert magics_of(ip).session().adapters[0].method == method and summary.trainable > 0


def test_widget_subcommands_and_sessions_listing(ip):
    from nbtune.ui import AdapterPanel, LayerFreezer

    ip.run_cell("%nbtune load $bert_dir --task text-classification --num-labels 2 --name first")
    assert isinstance(ip.run_cell("%nbtune layers --widget").result, LayerFreezer)
    panel = ip.run_cell("%nbtune adapters").result
    assert isinstance(panel, AdapterPanel)
    panel.attach_button.click()
    assert magics_of(ip).session().adapters[0].method == "lora"
    with capture_output() as cap:
        ip.run_cell("%nbtune sessions")
    assert "* first" in cap.stdout


def test_a_failed_recipe_leaves_the_sessions_as_they_were(ip):
    ip.run_cell("%nbtune load $bert_dir --task text-classification --num-labels 2")
    before = dict(magics_of(ip).sessions), magics_of(ip).current
    body = "model: $bert_dir\ntask: text-classification\ndata: {train: $train_df, text: nosuchcolumn}\n"
    with capture_output() as cap, pytest.raises(UsageError, match="nosuchcolumn"):
        ip.run_cell(f"%%finetune\n{body}")
    assert (dict(magics_of(ip).sessions), magics_of(ip).current) == before
    assert "session" not in cap.stdout


def test_dry_run_says_its_session_is_now_current(ip):
    with capture_output() as cap:
        ip.run_cell(f"%%finetune --dry-run -o plan\n{RECIPE}")
    assert "dry run, not trained" in cap.stdout and "now current" in cap.stdout
    assert magics_of(ip).session() is ip.user_ns["plan"].session


def test_nbtune_errors_render_as_their_message_alone_and_bugs_keep_their_traceback(shell, tiny_dirs):
    import sys

    def shown(exc_type, call):
        try:
            call()
        except exc_type:
            with capture_output() as cap:
                shell.showtraceback(sys.exc_info())
            return cap.stdout + cap.stderr
        raise AssertionError("no exception")

    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    text = shown(nbtune.SelectorError, lambda: s.freeze("nosuchmodule"))
    assert text.strip().startswith("SelectorError: Selector 'nosuchmodule' matches nothing")
    assert "Traceback" not in text and "freeze.py" not in text
    bug = shown(ZeroDivisionError, lambda: 1 / 0)
    assert "Traceback" in bug or "ZeroDivisionError" in bug and "line" in bug
