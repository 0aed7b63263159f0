"""The CUDA paths on a real GPU: mixed precision, out-of-memory recovery, device placement, save/reload/merge,
Stop and interrupt. Marked ``gpu``; skipped with one line where no CUDA device exists (CI, this CPU machine).
scripts/gpu_checks.sh runs them with the GPU benchmarks in one call."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nbtune
from nbtune.core.training.loop import TrainingError

from gpu_helpers import gsm8k, minilm_path, smollm2_path, sst2

pytestmark = pytest.mark.gpu
WORKER = Path(__file__).with_name("gpu_precision_worker.py")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gpu-models")


@pytest.fixture(scope="module")
def precision_runs(cache) -> dict[str, dict]:
    """fp32, auto and fp16, each in its own process (accelerate fixes the precision per process)."""
    out = {}
    for precision in ("no", "auto", "fp16"):
        path = cache / f"precision-{precision}.json"
        done = subprocess.run([sys.executable, str(WORKER), precision, str(path), str(cache)], capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        out[precision] = json.loads(path.read_text())
    return out


@pytest.mark.parametrize("model", ["minilm", "smollm2"])
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_mixed_precision_trains_like_fp32(precision_runs, model, precision):
    ref, run = precision_runs["no"][model], precision_runs[precision][model]
    if precision == "auto":
        native = tuple(precision_runs["auto"]["capability"]) >= (8, 0)
        assert run["precision"] == ("bf16" if native else "fp16")
    assert run["reasons"] == ["completed", "completed"], run["messages"]
    assert run["on_gpu"] and run["param_dtype"] == "torch.float32"  # master weights stay fp32
    assert run["skipped"] <= 5  # fp16: a few scaler calibration steps at most
    first, ref_first = run["losses"][0], ref["losses"][0]
    assert abs(first - ref_first) <= 0.02 * ref_first  # same weights, same batch: only rounding differs
    assert len(run["second_losses"]) == 5  # a second train() call in the same process works too
    tail, ref_tail = sum(run["losses"][-10:]) / 10, sum(ref["losses"][-10:]) / 10
    assert abs(tail - ref_tail) <= 0.05 * ref_tail
    assert ref_tail < sum(ref["losses"][:5]) / 5  # and fp32 itself learned
    if model == "minilm":
        assert abs(run["metrics"]["accuracy"] - ref["metrics"]["accuracy"]) <= 0.03


@pytest.fixture
def limited_memory():
    """A 6 GiB GPU inside the big one (the caching allocator raises a real CUDA OOM past it), then the whole card."""
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(6 * 2**30 / total)
    torch.cuda.reset_peak_memory_stats()
    yield 6 * 2**30
    torch.cuda.set_per_process_memory_fraction(1.0)
    gc.collect()
    torch.cuda.empty_cache()


def _smollm2_on_gpu(cache):
    s = nbtune.load(smollm2_path(cache), task="causal-lm")
    s.model.to("cuda")
    return s


def test_real_cuda_oom_is_freed_and_auto_batch_recovers(cache, limited_memory):
    s = _smollm2_on_gpu(cache)
    data = gsm8k("train", 64)
    settings = dict(batch_size=32, pad_to=512, max_length=512, max_steps=2, lr=1e-4, precision="no", log=False)
    gc.collect()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    with pytest.raises(TrainingError, match="Out of memory at step 1") as caught:
        s.train(data, **settings)
    gc.collect()
    # the error is still alive (as in a notebook's last traceback), and the step's activations are gone
    assert caught.value is not None and torch.cuda.memory_allocated() - base < 64 * 2**20
    assert s.history.losses() == []

    run = s.train(data, auto_batch=True, **settings)
    assert run.reason == "completed" and run.steps == 2, run.messages
    assert any("micro-batch halved" in m for m in run.messages)
    assert s.training.position.splits >= 2
    assert len(s.history.losses()) == 2 and all(torch.isfinite(torch.tensor(s.history.losses())))
    assert torch.cuda.max_memory_allocated() <= limited_memory


def test_adapters_and_new_heads_follow_the_model_onto_the_gpu():
    s = nbtune.load(minilm_path(), task="text-classification", labels=["negative", "positive"])
    s.model.to("cuda")
    s.reset_head(labels=["neg", "neu", "pos"])  # a new head built while the body is on the GPU
    s.add_lora(r=8, targets="qkv")  # adapter layers created beside GPU weights
    assert all(p.is_cuda for p in s.model.parameters())
    data = sst2("train", 64).assign(label=lambda d: d.label.map({0: "neg", 1: "pos"}))
    run = s.train(data, max_steps=2, batch_size=16, lr=5e-4, precision="no", log=False)
    assert run.reason == "completed"
    assert {p["label"] for p in s.predict(["a gripping film", "dull"])} <= {"neg", "neu", "pos"}


def _logits(session, batch):
    session.model.eval()
    with torch.no_grad():
        device = next(session.model.parameters()).device
        return session.model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()


def test_lora_save_reload_merge_on_gpu_match_cpu(cache, tmp_path):
    s = _smollm2_on_gpu(cache)
    s.add_lora(r=8, targets="qkv")
    s.train(gsm8k("train", 32), max_steps=4, batch_size=8, lr=1e-3, max_length=256, precision="no", log=False)
    batch = s.tokenizer(["Natalia sold 48 clips in April.", "How many?"], return_tensors="pt", padding=True)
    gpu = _logits(s, batch)
    s.save(tmp_path / "saved")

    on_cpu = nbtune.load(tmp_path / "saved")
    cpu = _logits(on_cpu, batch)
    assert torch.allclose(cpu, gpu, atol=2e-3, rtol=1e-4), (cpu - gpu).abs().max()

    again = nbtune.load(tmp_path / "saved")
    again.model.to("cuda")
    assert torch.allclose(_logits(again, batch), gpu, atol=1e-5)

    s.merge()
    assert torch.allclose(_logits(s, batch), gpu, atol=1e-3), (_logits(s, batch) - gpu).abs().max()


def _interrupt_at(step):
    from nbtune.core.training.events import StepEnded

    def callback(event, control):
        if isinstance(event, StepEnded) and event.step == step:
            raise KeyboardInterrupt
    return callback


def _stop_at(step):
    from nbtune.core.training.events import StepEnded

    def callback(event, control):  # what the dashboard's Stop button does between steps
        if isinstance(event, StepEnded) and event.step == step:
            control.stop("stopped by the Stop button")
    return callback


def test_interrupt_and_stop_keep_gpu_weights_and_resume():
    data, settings = sst2("train", 256), dict(max_steps=8, batch_size=32, lr=5e-5, seed=3, precision="no", log=False)

    def fresh():
        torch.manual_seed(0)  # the classification head is new: the same one in every session
        s = nbtune.load(minilm_path(), task="text-classification", labels=["negative", "positive"])
        s.model.to("cuda")
        return s

    ref = fresh()
    ref.train(data, **settings)
    want = {n: p.detach().clone() for n, p in ref.model.named_parameters()}

    s = fresh()
    run = s.train(data, callbacks=[_interrupt_at(3)], **settings)
    assert run.reason == "interrupted" and len(s.history.losses()) == 3
    assert all(p.is_cuda for p in s.model.parameters())
    s.train(data, resume=True, **settings)
    assert s.history.losses() == pytest.approx(ref.history.losses(), abs=1e-4)
    got = dict(s.model.named_parameters())
    assert max(float((got[n].detach() - w).abs().max()) for n, w in want.items()) < 1e-4

    stopped = fresh()
    before = {n: p.detach().clone() for n, p in stopped.model.named_parameters()}
    run = stopped.train(data, callbacks=[_stop_at(2)], **settings)
    assert run.reason == "stopped by the Stop button" and len(stopped.history.losses()) == 2
    moved = [n for n, p in stopped.model.named_parameters() if not torch.equal(p, before[n])]
    assert moved and all(p.is_cuda for p in stopped.model.parameters())
