"""The training engine: data forms, tasks, param groups, events, checkpoints and resume, faults."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

import nbtune
from nbtune.core.data.features import DataError
from nbtune.core.training.checkpoint import complete_checkpoints, find_checkpoint
from nbtune.core.training.config import TrainConfigError
from nbtune.core.training.events import Outcome, StepEnded
from nbtune.core.training.loop import TrainingError

from training_helpers import NEG, POS, toy_rows


@pytest.fixture
def bert(tiny_dirs):
    torch.manual_seed(0)
    return nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)


def fast(**kw):
    base = dict(epochs=3, lr=5e-3, batch_size=16, log=False)
    base.update(kw)
    return base


def weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# -- tasks and data forms ------------------------------------------------------------------------


def test_classification_learns_and_reports_metrics(bert):
    df = pd.DataFrame(toy_rows())
    before = bert.evaluate(df)
    run = bert.train(df, eval=df, **fast(epochs=6))
    after = run.metrics
    assert after["accuracy"] > before["accuracy"] and after["accuracy"] >= 0.9
    assert after["loss"] < before["loss"]
    assert 0 <= after["macro_f1"] <= 1
    h = run.history.to_pandas()
    assert {"step", "epoch", "loss", "lr", "seconds", "eval_accuracy"} <= set(h.columns)
    preds = bert.predict(["the film was brilliant", "honestly awful"])
    assert [p["label"] for p in preds] == ["LABEL_1", "LABEL_0"]


def test_sentence_pairs(tiny_dirs):
    torch.manual_seed(0)
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    rows = [{"text": r["sentence"], "text_pair": f"so {POS[i % 6] if i % 4 < 2 else NEG[i % 6]}",
             "label": int((r["label"] == 1) == (i % 4 < 2))} for i, r in enumerate(toy_rows(128))]
    df = pd.DataFrame(rows)
    first = s.evaluate(df)["loss"]
    run = s.train(df, eval=df, **fast(epochs=6))
    assert run.metrics["loss"] < first


def test_regression(tiny_dirs):
    torch.manual_seed(0)
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=1)
    df = pd.DataFrame([{"sentence": r["sentence"], "label": 4.0 * r["label"] + 0.5} for r in toy_rows()])
    before = s.evaluate(df)
    run = s.train(df, eval=df, **fast(epochs=6))
    assert run.metrics["mse"] < before["mse"]
    assert run.metrics["pearson"] > 0.5 and "spearman" in run.metrics


def test_string_labels_become_label_names(bert):
    df = pd.DataFrame([{"sentence": r["sentence"], "label": "pos" if r["label"] else "neg"} for r in toy_rows()])
    bert.train(df, **fast(epochs=1))
    assert bert.model.config.id2label == {0: "neg", 1: "pos"}
    assert bert.predict("a good film")[0]["label"] in ("neg", "pos")


def test_causal_lm_plain_text_and_prompt_response(tiny_dirs):
    torch.manual_seed(0)
    s = nbtune.load(tiny_dirs["gpt2"], task="causal-lm")
    texts = [r["sentence"] for r in toy_rows(48)]
    before = s.evaluate(texts)
    run = s.train(texts, eval=texts, **fast(epochs=3, lr=3e-3))
    assert run.metrics["loss"] < before["loss"] and run.metrics["perplexity"] < before["perplexity"]

    qa = [{"question": r["sentence"], "answer": "yes" if r["label"] else "no"} for r in toy_rows(48)]
    before = s.evaluate(qa)
    run = s.train(qa, eval=qa, **fast(epochs=4, lr=3e-3))
    assert run.metrics["loss"] < before["loss"]


def test_prompt_tokens_are_not_learned(tiny_dirs):
    from nbtune.core.tasks.causal_lm import CausalLMTask
    from nbtune.core.training.config import TrainConfig

    s = nbtune.load(tiny_dirs["llama"], task="causal-lm")
    table = pd.DataFrame([{"prompt": "is this good", "response": "yes"}])
    feats = CausalLMTask().prepare(s, table, TrainConfig())
    row = feats.rows[0]
    n_prompt = len(s.tokenizer("is this good\n")["input_ids"])
    assert row["labels"][:n_prompt] == [-100] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:] and len(row["labels"]) > n_prompt


def test_chat_template_is_used(smollm_gguf):
    """Training renders a prompt/response pair as generate() asks: the prompt exactly as generate() feeds it, then
    the trained answer and its end-of-turn mark."""
    from nbtune.core.data import chat
    from nbtune.core.tasks.generation import chat_prompt

    tok = nbtune.load(smollm_gguf, weights=False).tokenizer
    [encoded] = chat.encode_table(tok, pd.DataFrame([{"prompt": "What is 2+2?", "response": "4"}]), {}, None,
                                  "assistant", None)
    head, templated = chat_prompt(tok, "What is 2+2?")
    assert templated and "<|im_start|>user" in head and encoded.text.startswith(head)
    trained = tok.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label != -100])
    assert trained.startswith("4") and trained.rstrip().endswith("<|im_end|>")


@pytest.mark.parametrize("form", ["dataframe", "csv", "tsv", "json", "jsonl", "dataset", "datasetdict", "dicts"])
def test_every_data_form(bert, tmp_path, form):
    import datasets

    rows = toy_rows(32)
    df = pd.DataFrame(rows)
    data: object
    if form == "dataframe":
        data = df
    elif form == "csv":
        df.to_csv(tmp_path / "d.csv", index=False)
        data = str(tmp_path / "d.csv")
    elif form == "tsv":
        df.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
        data = tmp_path / "d.tsv"
    elif form == "json":
        df.to_json(tmp_path / "d.json", orient="records")
        data = tmp_path / "d.json"
    elif form == "jsonl":
        df.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
        data = tmp_path / "d.jsonl"
    elif form == "dataset":
        data = datasets.Dataset.from_pandas(df)
    elif form == "datasetdict":
        data = datasets.DatasetDict({"train": datasets.Dataset.from_pandas(df),
                                     "validation": datasets.Dataset.from_pandas(df[:8])})
    else:
        data = rows
    run = bert.train(data, **fast(epochs=1, batch_size=8))
    assert run.steps == 4
    if form == "datasetdict":  # its validation split was evaluated
        assert "accuracy" in run.metrics


def test_real_sst2_tsv_and_column_mapping(bert):
    from tiny_models import DATA

    run = bert.train(DATA / "sst2" / "dev.tsv", **fast(epochs=1, max_steps=2, batch_size=8))
    assert run.steps == 2
    df = pd.DataFrame({"review": ["good", "bad"] * 4, "stars": [1, 0] * 4})
    assert bert.train(df, columns={"label": "stars"}, **fast(epochs=1)).steps == 1


# -- bad input changes nothing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame, kwargs, pattern",
    [
        (pd.DataFrame({"txt": ["a"], "label": [0]}), {}, r"No text column found.*Columns: \['txt', 'label'\]"),
        (pd.DataFrame({"sentence": ["a"], "label": [0]}), {"columns": {"label": "y"}}, r"'y'.*Columns: \['sentence', 'label'\]"),
        (pd.DataFrame({"sentence": ["a", "b"], "label": [0, 5]}), {}, r"\[5\] are out of range.*reset_head\(num_labels=6\)"),
        (pd.DataFrame({"sentence": ["a", "b"], "label": [0, "pos"]}), {}, r"mix types \(row 0: 0, row 1: 'pos'\)"),
        (pd.DataFrame({"sentence": ["a", "b"], "label": [0.5, 1.0]}), {}, r"fractional.*\(row 0: 0\.5\).*num_labels=1"),
        (pd.DataFrame({"sentence": ["a", "b"], "label": [float("nan")] * 2}), {},
         r"^Every example has no label in column 'label' \(empty, None or NaN; rows 0, 1\)"),
        (pd.DataFrame({"sentence": list("abc"), "label": [0, None, 1]}), {},
         r"^1 of 3 examples have no label in column 'label' \(empty, None or NaN; row 1\).*dropna"),
        (pd.DataFrame({"sentence": ["a", None], "label": [0, 1]}), {}, r"^1 of 2 examples have no text in column 'sentence'"),
        (pd.DataFrame({"sentence": ["a", 7], "label": [0, 1]}), {}, r"Example 1 in column 'sentence' is int 7, not text"),
        (pd.DataFrame({"sentence": list("abc"), "label": ["x", "y", "z"]}), {}, r"3 label names.*reset_head\(labels="),
    ],
)
def test_bad_data_is_a_clear_error_and_changes_nothing(bert, frame, kwargs, pattern):
    bert.train(pd.DataFrame(toy_rows(16)), **fast(epochs=1))
    before, rows = weights(bert.model), len(bert.history)
    with pytest.raises(DataError, match=pattern):
        bert.train(frame, **fast(**kwargs))
    assert all(torch.equal(p, before[n]) for n, p in bert.model.named_parameters())
    assert len(bert.history) == rows and bert.model.config.id2label == {0: "LABEL_0", 1: "LABEL_1"}


def test_unknown_setting_and_bad_values(bert):
    with pytest.raises(TrainConfigError, match="'learning_rate'.*Valid settings"):
        bert.train(toy_rows(8), learning_rate=1e-3)
    with pytest.raises(TrainConfigError, match="lr must be > 0"):
        bert.train(toy_rows(8), lr=0)
    with pytest.raises(DataError, match="type int"):
        bert.train(42)
    bert.freeze("all")
    with pytest.raises(TrainingError, match="Nothing to train"):
        bert.train(toy_rows(8), log=False)


# -- optimizer -----------------------------------------------------------------------------------------


def test_param_groups_follow_freezing_and_frozen_params_never_move(bert):
    df = pd.DataFrame(toy_rows(32))
    bert.freeze("all")
    bert.unfreeze("head", "encoder.layer.[1]")
    frozen = {n: p.detach().clone() for n, p in bert.model.named_parameters() if not p.requires_grad}
    bert.train(df, **fast(epochs=1, weight_decay=0.5))
    opt = bert.training.optimizer
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in bert.model.parameters() if p.requires_grad}
    assert all(torch.equal(bert.model.get_parameter(n), v) for n, v in frozen.items())
    no_decay = [g for g in opt.param_groups if g["weight_decay"] == 0]
    assert no_decay and all(p.ndim == 1 for g in no_decay for p in g["params"])

    bert.train(df, **fast(epochs=1, weight_decay=0.5))  # same trainable set: the same optimizer, state kept
    assert bert.training.optimizer is opt
    step_count = max(s["step"] for s in opt.state.values())
    assert int(step_count) == 2 * 2  # two runs of two steps each

    bert.unfreeze("encoder.layer.[0]")  # the trainable set changed: groups rebuilt around the new params
    bert.train(df, **fast(epochs=1))
    assert bert.training.optimizer is not opt
    new_ids = {id(p) for g in bert.training.optimizer.param_groups for p in g["params"]}
    assert id(bert.model.bert.encoder.layer[0].output.dense.weight) in new_ids


def test_head_lr_and_layer_decay(bert):
    from nbtune.core.training.config import TrainConfig
    from nbtune.core.training.optim import param_groups

    groups = param_groups(bert.model, TrainConfig(lr=1e-3, head_lr=1e-2, layer_decay=0.5))
    lr_of = {n: g["lr"] for g in groups for n in g["names"]}
    assert lr_of["classifier.weight"] == 1e-2
    assert lr_of["bert.encoder.layer.1.output.dense.weight"] == pytest.approx(1e-3 * 0.5)
    assert lr_of["bert.encoder.layer.0.output.dense.weight"] == pytest.approx(1e-3 * 0.25)
    assert lr_of["bert.embeddings.word_embeddings.weight"] == pytest.approx(1e-3 * 0.125)


def test_warmup_and_schedules(bert):
    df = pd.DataFrame(toy_rows(64))
    run = bert.train(df, **fast(epochs=1, batch_size=8, warmup=4, schedule="cosine"))
    lrs = run.history.to_pandas()["lr"].dropna().tolist()
    assert lrs[:5] == pytest.approx([5e-3 * k / 4 for k in range(0, 5)])  # the rate each step used
    assert lrs[-1] < lrs[4]
    run = bert.train(df, **fast(epochs=1, batch_size=8, schedule="constant"))
    assert set(run.history.to_pandas()["lr"].dropna()) == {5e-3}


def test_grad_accumulation_matches_a_bigger_batch(tiny_dirs):
    df = pd.DataFrame(toy_rows(32))
    finals = []
    for bs, acc in ((16, 1), (8, 2)):
        torch.manual_seed(0)
        s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
        s.model.config.hidden_dropout_prob = 0.0
        for m in s.model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        s.train(df, **fast(epochs=1, batch_size=bs, grad_accum=acc, group_by_length=False))
        finals.append(weights(s.model))
    assert all(torch.allclose(finals[0][n], finals[1][n], atol=1e-5) for n in finals[0])


# -- events ----------------------------------------------------------------------------------------------


def test_events_and_control(bert):
    seen = []

    def listener(event, control):
        seen.append(type(event).__name__)
        if isinstance(event, StepEnded) and event.run_step == 3:
            control.stop("requested")

    run = bert.train(toy_rows(64), eval=toy_rows(16), callbacks=[listener], **fast(epochs=2, batch_size=8))
    assert seen[0] == "FitStarted" and seen[-1] == "FitEnded"
    assert seen.count("StepEnded") == 3 and "EvalEnded" in seen
    assert run.reason == "requested" and run.steps == 3 and not run.cancelled


def test_early_stopping(bert):
    run = bert.train(toy_rows(64), eval=toy_rows(16), **fast(epochs=30, lr=1e-9, eval_every=1, early_stopping=2,
                                                              early_stopping_metric="loss"))
    assert run.reason == "early stopping" and run.steps < 30 * 4
    assert any("early stopping" in m for m in run.messages)


# -- checkpoints, resume ---------------------------------------------------------------------------------


def _fresh(tiny_dirs):
    torch.manual_seed(123)  # a different global RNG state: resuming must not depend on it
    return nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)


def test_resume_from_checkpoint_gives_the_same_losses(tiny_dirs, tmp_path):
    data = toy_rows(80)
    settings = fast(epochs=2, batch_size=8, lr=1e-3, seed=7)  # 20 steps, dropout on
    ref = _fresh(tiny_dirs)
    ref.train(data, **settings)
    reference = ref.history.losses()

    s = _fresh(tiny_dirs)

    def interrupt(event, control):
        if isinstance(event, StepEnded) and event.step == 13:
            raise KeyboardInterrupt

    run = s.train(data, callbacks=[interrupt], checkpoint_dir=str(tmp_path / "ck"), save_every=4, **settings)
    assert run.cancelled and run.global_step == 13

    restarted = _fresh(tiny_dirs)  # as after a kernel restart: same model, nothing in memory
    run = restarted.train(data, resume=tmp_path / "ck", checkpoint_dir=str(tmp_path / "ck"), save_every=4, **settings)
    assert run.global_step == 20 and len(restarted.history.losses()) == 20
    assert restarted.history.losses() == pytest.approx(reference, abs=1e-6)
    assert torch.allclose(restarted.model.classifier.weight, ref.model.classifier.weight, atol=1e-6)


def test_half_written_checkpoint_is_ignored(tiny_dirs, tmp_path):
    s = _fresh(tiny_dirs)
    s.train(toy_rows(32), checkpoint_dir=str(tmp_path), save_every=2, keep_checkpoints=5, **fast(epochs=1, batch_size=8))
    complete = complete_checkpoints(tmp_path)
    assert [p.name for p in complete] == ["step-00000002", "step-00000004"]
    # a crash during a later save leaves a temporary folder, and a copy may lack files
    (tmp_path / ".step-00000006.tmp-999").mkdir()
    broken = tmp_path / "step-00000008"
    broken.mkdir()
    (broken / "state.json").write_text(json.dumps({"global_step": 8}))
    assert find_checkpoint(tmp_path).name == "step-00000004"


def test_resume_with_other_settings_is_refused(tiny_dirs, tmp_path):
    s = _fresh(tiny_dirs)
    s.train(toy_rows(32), checkpoint_dir=str(tmp_path), save_every=2, **fast(epochs=1, batch_size=8))
    with pytest.raises(TrainingError, match="batch_size=8 there, 16 now"):
        s.train(toy_rows(32), resume=tmp_path, **fast(epochs=1, batch_size=16))


# -- faults --------------------------------------------------------------------------------------------


def test_keyboard_interrupt_mid_step_keeps_last_completed_step(tiny_dirs):
    data = toy_rows(64)
    settings = fast(epochs=1, batch_size=8, seed=3)
    ref = _fresh(tiny_dirs)
    ref.train(data, **settings)

    s = _fresh(tiny_dirs)
    snapshots = {}
    calls = {"n": 0}

    def remember(event, control):
        if isinstance(event, StepEnded):
            snapshots[event.step] = weights(s.model)

    def hook(module, args, output):
        calls["n"] += 1
        if calls["n"] == 5:  # the forward of step 5: interrupted before its update
            raise KeyboardInterrupt

    handle = s.model.classifier.register_forward_hook(hook)
    run = s.train(data, callbacks=[remember], **settings)
    handle.remove()
    assert run.cancelled and run.reason == "interrupted" and run.global_step == 4
    now = weights(s.model)
    assert all(torch.equal(now[n], snapshots[4][n]) for n in now)
    assert len(s.history.losses()) == 4
    s.train(data, resume=True, **settings)  # continues the same run to its end
    assert s.history.losses() == pytest.approx(ref.history.losses(), abs=1e-6)


def _poisoned_run(s, at: int, **settings):
    """Train with the head's output made NaN in the ``at``-th forward; the run and the weights after each step."""
    calls = {"n": 0}
    snapshots = {}

    def remember(event, control):
        if isinstance(event, StepEnded):
            snapshots[event.step] = weights(s.model)

    def poison(module, args, output):
        calls["n"] += 1
        return output * float("nan") if calls["n"] == at else output

    handle = s.model.classifier.register_forward_hook(poison)
    try:
        return s.train(toy_rows(64), callbacks=[remember], **settings, **fast(epochs=1, batch_size=8)), snapshots
    finally:
        handle.remove()


def test_nan_loss_goes_back_to_the_last_weights_known_to_give_a_finite_loss(bert):
    run, snapshots = _poisoned_run(bert, at=3)
    # step 3's loss is non-finite: the weights of step 2 may be the cause, so the session is back at step 1
    assert run.reason == "non-finite loss" and run.cancelled and run.global_step == 1
    message = " ".join(run.messages)
    assert "at step 3" in message and "learning rate" in message and "went back to step 1" in message
    assert "in-memory snapshot" in message
    now = weights(bert.model)
    assert all(torch.equal(now[n], snapshots[1][n]) for n in now)
    assert len(bert.history.losses()) == 1 and bert.training.position.run_step == 1


def test_diverging_learning_rate_leaves_weights_that_evaluate_finite(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    data = toy_rows(64)
    run = s.train(data, **fast(epochs=3, batch_size=8, lr=1e12, max_grad_norm=0))
    assert run.outcome is Outcome.NON_FINITE
    assert all(torch.isfinite(p).all() for p in s.model.parameters())
    assert math.isfinite(s.evaluate(data)["loss"])
    assert len(s.history.losses()) == s.training.global_step  # history and weights describe the same step


def test_nan_loss_without_a_snapshot_goes_back_to_the_newest_checkpoint(bert, tmp_path, monkeypatch):
    from nbtune.core.training import transaction

    monkeypatch.setattr(transaction, "SNAPSHOT_MAX_BYTES", 0)  # as for a trainable set too large to copy
    run, snapshots = _poisoned_run(bert, at=6, checkpoint_dir=str(tmp_path), save_every=2)
    assert run.outcome is Outcome.NON_FINITE and run.global_step == 4  # the checkpoint of step 4
    assert "went back to step 4" in " ".join(run.messages) and "checkpoint" in " ".join(run.messages)
    now = weights(bert.model)
    assert all(torch.equal(now[n], snapshots[4][n]) for n in now)
    assert len(bert.history.losses()) == 4 and bert.training.position.run_step == 4


def _oom_when_larger_than(limit):
    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
    return hook


def test_out_of_memory_auto_batch_halves_and_keeps_effective_batch(tiny_dirs):
    data = toy_rows(64)
    settings = fast(epochs=1, batch_size=16, seed=5)
    ref = _fresh(tiny_dirs)
    for m in ref.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    ref.train(data, **settings)

    s = _fresh(tiny_dirs)
    for m in s.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    handle = s.model.register_forward_pre_hook(_oom_when_larger_than(4), with_kwargs=True)
    run = s.train(data, auto_batch=True, **settings)
    handle.remove()
    assert run.reason == "completed" and run.steps == 4
    assert any("micro-batch halved to 8" in m for m in run.messages)
    assert any("micro-batch halved to 4" in m for m in run.messages)
    assert s.history.losses() == pytest.approx(ref.history.losses(), abs=1e-5)


def test_out_of_memory_without_auto_batch_explains(bert):
    bert.train(toy_rows(16), **fast(epochs=1))
    before = weights(bert.model)
    handle = bert.model.register_forward_pre_hook(_oom_when_larger_than(4), with_kwargs=True)
    with pytest.raises(TrainingError, match="Out of memory at step .* auto_batch=True"):
        bert.train(toy_rows(32), **fast(epochs=1))
    handle.remove()
    assert all(torch.equal(p, before[n]) for n, p in bert.model.named_parameters())


def test_meta_model_refuses_training(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", weights=False)
    with pytest.raises(nbtune.MetaModelError, match="weights=True"):
        s.train(toy_rows(8))


def test_plain_module_trains_and_frozen_batchnorm_stays(cnn):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images[:400], dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(digits.target[:400]) % 3  # TinyCNN has 3 outputs
    data = list(zip(x, y))
    s = nbtune.load(cnn)
    s.freeze("type:BatchNorm2d")
    stats = cnn.features[1].running_mean.clone()
    before = s.evaluate(data)
    run = s.train(data, eval=data, epochs=3, lr=1e-2, batch_size=32, log=False)
    assert run.metrics["loss"] < before["loss"] and "accuracy" in run.metrics
    assert torch.equal(cnn.features[1].running_mean, stats)  # frozen BatchNorm kept its statistics
    with pytest.raises(DataError, match="no 'labels'"):
        s.evaluate([{"input": x[0]}])


def test_out_of_memory_error_keeps_no_activations_alive(bert):
    """A CUDA OOM's traceback holds the failed step's activations; nbtune's error must not carry it, or the memory
    stays allocated for as long as the notebook keeps the error (IPython keeps the last one)."""
    import gc
    import weakref

    kept = []

    def hook(module, args, kwargs):
        activation = torch.ones(1000)  # stands in for the step's GPU activations, referenced by this frame
        kept.append(weakref.ref(activation))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")

    handle = bert.model.register_forward_pre_hook(hook, with_kwargs=True)
    with pytest.raises(TrainingError, match="Out of memory") as caught:
        bert.train(toy_rows(8), **fast(epochs=1, batch_size=1))
    handle.remove()
    gc.collect()
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert kept and all(ref() is None for ref in kept)


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((6, 0), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_precision_uses_bf16_only_where_native(monkeypatch, capability, expected):
    from nbtune.core.model.precision import resolve_precision

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", "cuda:0") == expected
    assert resolve_precision("fp16", "cpu") == "fp16"


@pytest.mark.parametrize("native, width, expected", [(True, 384, "bf16"), (True, 128, "bf16"), (True, 64, "no"),
                                                     (False, 384, "no")])
def test_auto_precision_on_cpu_uses_bf16_where_the_cpu_has_it_and_the_model_is_wide(monkeypatch, native, width,
                                                                                       expected):
    from transformers import BertConfig, BertModel

    from nbtune.core.model import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    model = BertModel(BertConfig(hidden_size=width, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                                 vocab_size=50))
    assert precision.resolve_precision("auto", "cpu", model) == expected
    assert precision.resolve_precision("auto", "cpu") == "no"  # no model: width unknown
    plain = torch.nn.Sequential(torch.nn.Linear(width, 4), torch.nn.Linear(width, 4), torch.nn.Linear(4, 2))
    assert precision.resolve_precision("auto", "cpu", plain) == expected  # the median Linear input width


def test_cpu_bf16_is_chosen_per_run_and_computes_in_bf16(bert):
    """accelerate fixes mixed precision per process; on CPU nbtune applies bf16 per run, so a notebook can train
    one run in bf16 and the next in fp32 without a restart, and each really computes in its dtype."""
    seen = []
    handle = bert.model.bert.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda module, args, out: seen.append(out.dtype))
    lines = []
    bert.train(toy_rows(16), callbacks=[lambda e, c: lines.append(getattr(e, "precision", None))],
               **fast(epochs=1, precision="bf16"))
    assert set(seen) == {torch.bfloat16} and "bf16 mixed precision" in lines
    assert all(p.dtype == torch.float32 for p in bert.model.parameters())  # fp32 master weights
    seen.clear()
    bert.train(toy_rows(16), **fast(epochs=1, precision="no"))
    assert set(seen) == {torch.float32}
    seen.clear()
    bert.evaluate(toy_rows(16))  # evaluation uses the last run's precision
    assert set(seen) == {torch.float32}
    handle.remove()


def test_finished_runs_leave_no_optimizer_alive_in_accelerate(bert):
    """accelerate keeps every prepared optimizer in a list of its own; a notebook that trains, changes the trainable
    set and trains again must not keep the old optimizer (its state is twice the trained weights) alive."""
    import gc
    import weakref

    bert.train(toy_rows(16), **fast(epochs=1))
    old = weakref.ref(bert.training.optimizer)
    bert.freeze("all")
    bert.unfreeze("head")
    bert.train(toy_rows(16), **fast(epochs=1))  # a new trainable set: a new optimizer
    gc.collect()
    assert old() is None


# -- the run lifecycle: planned before applied, always ended --------------------------------------------


def test_an_error_inside_a_run_still_ends_it_for_every_view(bert):
    from nbtune.core.training.events import FitEnded, Outcome

    seen = []

    def record(event, control):
        seen.append(event)
        if isinstance(event, StepEnded) and event.step == 2:
            raise ValueError("a bug in a callback")

    with pytest.raises(ValueError, match="a bug in a callback"):
        bert.train(toy_rows(64), callbacks=[record], **fast(epochs=1))
    assert isinstance(seen[-1], FitEnded) and seen[-1].outcome is Outcome.ERROR
    assert isinstance(seen[-1].error, ValueError) and seen[-1].step == 2
    assert len(bert.history.losses()) == 2 and not bert.model.training


def test_a_failed_plan_changes_nothing(bert):
    from nbtune.core.training.runtime import get_accelerator

    get_accelerator("no")  # this process trains in fp32; fp16 cannot be switched to without a restart
    before = dict(bert.model.config.id2label)
    rows = [{"sentence": r["sentence"], "label": ["neg", "pos"][r["label"]]} for r in toy_rows(16)]
    with pytest.raises(TrainConfigError, match="precision"):
        bert.train(rows, precision="fp16", **fast(epochs=1))
    assert bert.model.config.id2label == before and bert.history.rows == [] and bert.training.position is None


def test_a_misspelt_hook_is_refused_before_training(bert):
    from nbtune.core.training.callbacks import Callback, CallbackError

    class Late(Callback):
        def on_step_end(self, event, control):  # the hook is on_step_ended
            control.stop()

    with pytest.raises(CallbackError, match="on_step_end is not a training hook.*did you mean on_step_ended"):
        bert.train(toy_rows(16), callbacks=[Late()], **fast(epochs=1))
    assert bert.history.rows == []


def test_early_stopping_patience_survives_an_interrupt(tiny_dirs):
    from nbtune.core.training.events import EvalEnded

    settings = fast(epochs=30, lr=5e-2, early_stopping=2, eval_every=1, seed=1)
    data = toy_rows(32)
    ref = _fresh(tiny_dirs)
    done = ref.train(data, eval=data, **settings)
    assert done.reason == "early stopping"
    stop_step = done.global_step
    evals = [r for r in ref.history.evals()]
    # interrupt right after the evaluation that made patience 1 of 2
    bad_at = next(e["step"] for i, e in enumerate(evals[1:], 1)
                  if e["eval_accuracy"] <= max(x["eval_accuracy"] for x in evals[:i]))

    def interrupt(event, control):
        if isinstance(event, EvalEnded) and event.step == bad_at:
            raise KeyboardInterrupt

    s = _fresh(tiny_dirs)
    run = s.train(data, eval=data, callbacks=[interrupt], **settings)
    assert run.reason == "interrupted" and s.training.position.callbacks["EarlyStopping"]["bad"] >= 1
    resumed = s.train(data, eval=data, resume=True, **settings)
    assert resumed.reason == "early stopping" and resumed.global_step == stop_step


def test_a_tasks_step_metrics_reach_history_and_plot(tiny_dirs):
    """Adding a live per-step metric is one method on a task class: registered, it reaches StepEnded, the history
    and the dashboard's plot with no other change."""
    from nbtune.core.tasks import register_task
    from nbtune.core.tasks.classification import ClassificationTask
    from nbtune.core.tasks.registry import unregister_task
    from nbtune.ui.plot import LossPlot, step_metric_names

    @register_task
    class WithAccuracy(ClassificationTask):
        name = "classification-with-train-accuracy"
        aliases = ()

        def step_metrics(self, outputs, batch):
            return {"train_accuracy": (outputs.logits.argmax(-1) == batch["labels"]).float().mean()}

    try:
        s = nbtune.load(tiny_dirs["bert"], task="classification-with-train-accuracy", num_labels=2)
        seen = []
        s.train(toy_rows(32), callbacks=[lambda e, c: seen.append(e) if isinstance(e, StepEnded) else None],
                **fast(epochs=1))
    finally:
        unregister_task("classification-with-train-accuracy")
    assert seen and all(0 <= e.metrics["train_accuracy"] <= 1 for e in seen)
    assert step_metric_names(s.history.rows) == ["train_accuracy"]
    assert LossPlot().png(s.history.rows)[:4] == b"\x89PNG"


@pytest.mark.parametrize("given, meant", [("learning_rate", "lr"), ("num_epochs", "epochs"),
                                          ("gradient_accumulation_steps", "grad_accum"), ("max_seq_length", "max_length")])
def test_names_from_other_tools_suggest_nbtunes(given, meant):
    from nbtune.core.training.config import TrainConfig

    with pytest.raises(TrainConfigError, match=f"'{given}' \\(did you mean '{meant}'\\?\\)"):
        TrainConfig.from_kwargs(**{given: 1})


def test_adapter_and_recipe_synonyms(bert):
    from nbtune.core.recipes.spec import RecipeError, parse_recipe

    with pytest.raises(nbtune.AdapterError, match="'rank' \\(did you mean 'r'\\?\\)"):
        bert.add_adapter("lora", rank=8)
    with pytest.raises(RecipeError, match="'rank' \\(did you mean 'r'\\?\\)"):
        parse_recipe({"model": "m", "lora": {"rank": 8}})


def test_a_recipe_head_of_another_width_than_its_labels_is_refused():
    from nbtune.core.recipes.spec import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match="loaded with 2 classes .* head asks for 3"):
        parse_recipe({"model": "m", "labels": ["negative", "positive"], "head": {"num_labels": 3}})
    with pytest.raises(RecipeError, match="labels names 2 classes but num_labels is 3"):
        parse_recipe({"model": "m", "head": {"labels": ["a", "b"], "num_labels": 3}})
    same = parse_recipe({"model": "m", "num_labels": 2, "head": {"labels": ["negative", "positive"]}})
    assert same.head == {"labels": ["negative", "positive"]}


def test_the_default_learning_rate_follows_the_trainable_set(tiny_dirs):
    def run_with_defaults(setup):
        s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
        setup(s)
        return s.train(toy_rows(32), max_steps=2, batch_size=8, log=False)

    def head_only(s):
        s.freeze("all")
        s.unfreeze("head")

    cases = [(lambda s: None, 5e-5, "fine-tuning"), (head_only, 3e-3, "head only"),
             (lambda s: s.add_lora(r=2), 5e-4, "LoRA default"), (lambda s: s.add_ia3(), 3e-3, "IA3 default")]
    for setup, rate, why in cases:
        run = run_with_defaults(setup)
        assert run.config["lr"] == rate and any(why in m and "pass lr=" in m for m in run.messages)
    explicit = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    run = explicit.train(toy_rows(32), max_steps=2, batch_size=8, log=False, lr=1e-4)
    assert run.config["lr"] == 1e-4 and not any("pass lr=" in m for m in run.messages)


def test_run_summary_compares_means_not_single_batches():
    from nbtune.render.training import loss_trend

    losses = [0.9, 0.5, 0.7, 0.6, 0.65, 0.6, 0.62, 0.61, 0.6, 0.58] * 3 + [0.2]
    assert loss_trend(losses) == ", loss 0.7000 -> 0.4600 (means of the first and last 3 steps)"


def test_early_stopping_restores_the_best_evaluations_weights(tiny_dirs, tmp_path):
    data = toy_rows(48)
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    evals = {}

    def remember(event, control):
        if type(event).__name__ == "EvalEnded":
            evals[event.step] = (event.metrics["loss"], weights(s.model))

    run = s.train(data, eval=data, callbacks=[remember], epochs=30, batch_size=16, lr=3e-2, log=False,
                  eval_every=1, early_stopping=2, early_stopping_metric="loss", max_grad_norm=0)
    best_step = min(evals, key=lambda k: evals[k][0])
    assert run.outcome is Outcome.EARLY_STOPPED and best_step < run.global_step
    now = weights(s.model)
    assert all(torch.equal(now[n], evals[best_step][1][n]) for n in now)
    assert run.metrics["loss"] == evals[best_step][0]
    assert any(f"restored the weights of step {best_step}" in m for m in run.messages)
    assert s.evaluate(data)["loss"] == pytest.approx(evals[best_step][0], abs=1e-6)


def test_slow_runs_show_tokens_and_seconds_a_step_not_zero_examples():
    from nbtune.core.training.callbacks import History
    from nbtune.core.training.result import RunResult
    from nbtune.render.format import rate_text

    assert rate_text(12.34) == "12.3 ex/s"
    assert rate_text(0.04, 35.2, 25.1) == "35 tok/s, 25.1 s/step"
    run = RunResult(history=History(), metrics={}, reason="completed", steps=4, global_step=4, seconds=100.0,
                    examples_per_s=0.04, tokens_per_s=35.0)
    assert "35 tok/s, 25.0 s/step" in repr(run) and "0.0 ex" not in repr(run)
