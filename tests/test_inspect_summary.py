"""Layer tree rows and rendering, parameter summary and memory estimate, head replacement."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nbtune
from nbtune import HeadError
from nbtune.core.model.memory import estimate_memory, saved_activation_bytes


@pytest.fixture
def bert(tiny_dirs):
    return nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)


def test_rows_carry_names_shapes_counts(bert):
    tree = bert.layers()
    q = tree["bert.encoder.layer.0.attention.self.query"]
    assert q.type == "Linear" and q.shapes == {"weight": (32, 32), "bias": (32,)}
    assert q.own_params == q.total_params == 32 * 32 + 32
    assert q.dtype == "float32" and q.device == "cpu"
    root = tree[""]
    assert root.total_params == sum(p.numel() for p in bert.model.parameters())
    bert.freeze("bert.encoder.layer.0")
    tree = bert.layers()
    assert tree["bert.encoder.layer.0"].trainable_state == "none"
    assert tree["bert.encoder"].trainable_state == "partial"


def test_depth_filter_and_render(bert):
    assert max(r.depth for r in bert.layers(depth=2)) == 2
    filtered = bert.layers("attention.self.query")
    assert "bert.encoder.layer.1.attention.self.query" in filtered.names()
    assert "bert.embeddings" not in filtered.names()
    assert "bert.encoder" in filtered.names()  # ancestors kept for context
    text = repr(bert.layers())
    assert "BertForSequenceClassification" in text and "query" in text and "weight[32, 32]" in text
    tree = bert.layers()
    html = tree._repr_html_()
    # one table (columns align at every depth), one row per module, depth shown by the name cell's indent
    assert html.count("<table") == 1 and html.count("<tr") == len(tree) + 1 and "<details" not in html
    query = tree["bert.encoder.layer.0.attention.self.query"]
    assert f'<tr title="{query.name}"><td style="' in html and f"padding-left:{1.2 * query.depth:.1f}em\">query<" in html
    assert bert.layers().to_pandas().shape[0] == len(bert.layers())


def test_repeated_blocks_fold(minilm_dir):
    s = nbtune.load(minilm_dir, task="text-classification", num_labels=2)
    tree = s.layers()
    folded = [r for r in tree if r.folded]
    assert len(folded) == 1 and folded[0].name == "bert.encoder.layer.1-5" and folded[0].folded == 5
    assert folded[0].total_params == 5 * tree["bert.encoder.layer.0"].total_params
    assert "bert.encoder.layer.3.attention" not in tree.names()
    assert "bert.encoder.layer.3.attention" in s.layers(fold=False).names()
    assert "5 x BertLayer" in repr(tree)


def test_llama_70b_sized_config_on_meta_lists(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=32000, architectures=["LlamaForCausalLM"]).save_pretrained(tmp_path)
    s = nbtune.load(tmp_path, weights=False, tokenizer=False)
    tree = s.layers()
    assert 68e9 < tree[""].total_params < 70e9
    assert [r.name for r in tree if r.folded] == ["model.layers.1-79"]
    mem = s.summary(batch_size=1, seq_len=4096).memory
    assert mem.weights == pytest.approx(tree[""].total_params * 4, rel=0.01)


def test_summary_counts_and_memory_follow_freezing(bert):
    full = bert.summary(batch_size=16, seq_len=64)
    total = sum(p.numel() for p in bert.model.parameters())
    assert full.total == full.trainable == total
    assert {m.name for m in full.counts.by_module} == {"bert", "classifier"}
    bert.freeze("all")
    bert.unfreeze("classifier")
    head = bert.summary(batch_size=16, seq_len=64)
    assert head.trainable == 32 * 2 + 2
    assert head.pct_trainable == pytest.approx(100 * 66 / total)
    assert head.memory.gradients == 66 * 4 and head.memory.optimizer == 2 * 66 * 4
    assert head.memory.weights == full.memory.weights
    assert head.memory.activations < full.memory.activations
    assert head.memory.training < full.memory.training
    # memory grows with batch and sequence length
    assert bert.summary(batch_size=32, seq_len=64).memory.activations > head.memory.activations
    text, html = repr(head), head._repr_html_()
    assert "66 trainable" in text and "AdamW state" in text and "<table" in html


def test_tied_weights_counted_once(tiny_dirs):
    s = nbtune.load(tiny_dirs["gpt2"], task="causal-lm")
    unique = {id(p): p.numel() for p in s.model.parameters()}
    assert s.summary().total == sum(unique.values())
    with_dupes = sum(p.numel() for _, p in s.model.named_parameters(remove_duplicate=False))
    assert with_dupes > s.summary().total


def test_summary_on_module_without_config(cnn):
    summary = nbtune.load(cnn).summary()
    assert summary.memory.activations is None and "not estimated" in summary.memory.assumptions


def test_reset_head_new_size_trains(bert):
    change = bert.reset_head(num_labels=10)
    assert change.new_shape == (10, 32)
    assert bert.model.classifier.weight.requires_grad
    assert bert.model.config.num_labels == 10 and len(bert.model.config.id2label) == 10
    out = bert.model(input_ids=torch.tensor([[2, 10, 11, 3]]), labels=torch.tensor([9]))
    assert out.logits.shape == (1, 10) and torch.isfinite(out.loss)
    named = bert.reset_head(labels=["neg", "pos"])
    assert named.labels == ["neg", "pos"] and bert.model.config.label2id == {"neg": 0, "pos": 1}


def test_reset_head_in_place_reinitialises(bert):
    old = bert.model.classifier.weight.detach().clone()
    bert.reset_head()
    assert bert.model.classifier.weight.shape == old.shape
    assert not torch.equal(bert.model.classifier.weight, old)


def test_reset_head_errors_change_nothing(bert, tiny_dirs):
    before = bert.model.classifier.weight.detach().clone()
    for kwargs, pattern in [({"num_labels": 0}, "positive"), ({"labels": ["a", "a"]}, "distinct"),
                            ({"num_labels": 3, "labels": ["a", "b"]}, "3 but 2")]:
        with pytest.raises(HeadError, match=pattern):
            bert.reset_head(**kwargs)
    assert torch.equal(bert.model.classifier.weight, before)
    gpt2 = nbtune.load(tiny_dirs["gpt2"], task="causal-lm")
    with pytest.raises(HeadError, match="tied to the input embeddings"):
        gpt2.reset_head()
    with pytest.raises(HeadError, match="vocabulary"):
        gpt2.reset_head(num_labels=3)


def test_reset_head_on_plain_module(cnn):
    s = nbtune.load(cnn)
    s.reset_head(num_labels=5)
    assert cnn.fc.out_features == 5 and cnn(torch.randn(2, 1, 8, 8)).shape == (2, 5)


# -- the core stays UI-free ----------------------------------------------------------------------

CORE = Path(nbtune.__file__).parent
FORBIDDEN = ("IPython", "ipywidgets", "matplotlib")


def test_core_sources_import_no_ui_library():
    for path in list((CORE / "core").rglob("*.py")) + list((CORE / "render").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path} imports {name}"


def test_using_the_core_loads_no_ui_library(tiny_dirs):
    code = (
        "import sys, nbtune\n"
        f"s = nbtune.load({str(tiny_dirs['bert'])!r}, task='text-classification')\n"
        "s.freeze('all'); s.unfreeze('head'); repr(s.layers()); s.layers()._repr_html_(); repr(s.summary())\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_memory_estimate_follows_attention_kernel_and_precision(tiny_dirs):
    """SDPA/flash attention keeps no s x s scores, so activations grow linearly with the sequence; eager attention
    grows faster. bf16 autocast halves the stored activations. (Calibrated against torch.cuda.max_memory_allocated
    on an H200: bench/results/gpu_memory_h200.json.)"""
    s = nbtune.load(tiny_dirs["gpt2"], task="causal-lm")
    s.model.config._attn_implementation = "sdpa"
    act = lambda seq, precision="no": estimate_memory(s.model, 4, seq, precision=precision,  # noqa: E731
                                                      device="cuda").activations  # a GPU's fused SDPA kernels
    assert act(512) / act(256) == pytest.approx(2.0, rel=0.02)
    s.model.config._attn_implementation = "eager"
    assert act(512) / act(256) > 2.05
    assert s.summary(precision="auto").memory.assumptions.startswith("AdamW")


def test_memory_estimate_bf16_stores_smaller_activations(bert):
    fp32, bf16 = (estimate_memory(bert.model, 8, 128, precision=p, device="cuda") for p in ("no", "bf16"))
    assert 0.45 < bf16.activations / fp32.activations < 0.8  # norms stay float32 under autocast
    assert (bf16.weights, bf16.gradients, bf16.optimizer) == (fp32.weights, fp32.gradients, fp32.optimizer)


def test_on_a_cpu_attention_dropout_keeps_the_scores_and_the_estimate_follows_the_measurement(bert):
    """CPU SDPA with attention dropout runs its math kernel, which keeps float32 s x s scores per head: the estimate
    grows faster than linearly there and stays near what autograd really keeps (saved_activation_bytes)."""
    assert bert.model.config.attention_probs_dropout_prob > 0
    act = lambda seq: estimate_memory(bert.model, 8, seq, precision="bf16", device="cpu").activations  # noqa: E731
    assert act(256) / act(128) > 2.05
    ids = torch.randint(5, 100, (8, 128))
    model = bert.model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kept = saved_activation_bytes(model, lambda: model(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                           labels=torch.zeros(8, dtype=torch.long)))
    assert 0.75 < act(128) / kept < 1.25
    cpu = estimate_memory(bert.model, 8, 128, device="cpu")
    assert cpu.runtime > 0 and estimate_memory(bert.model, 8, 128, device="cuda").runtime == 0


def test_frozen_model_needs_no_activation_memory(bert):
    bert.freeze("all")
    assert bert.summary(batch_size=64, seq_len=256).memory.activations == 0


def test_a_head_trained_through_modules_to_save_reads_all_trainable(bert):
    """peft keeps a frozen backup of a head it trains (classifier.original_module): the tree's state counts what
    can train, so the head reads 'all' (yes), not 'partial' at 50%."""
    bert.add_lora(r=2)
    tree = bert.layers()
    head = next(r for r in tree if r.type == "ModulesToSaveWrapper")
    assert head.trainable * 2 == head.total_params and head.trainable_state == "all"
    assert ">yes<" in tree._repr_html_().split(f'title="{head.name}"')[1].split("</tr>")[0]


def test_a_seq2seq_run_is_estimated_with_its_generation_phase(tiny_dirs):
    """Seq2seq evaluation generates (ROUGE/BLEU) in batches of its own: the estimate covers that phase, and its KV
    cache grows with the tokens generated; a classifier's run has no generation phase."""
    s = nbtune.load(tiny_dirs["t5"], task="seq2seq")
    memory = s.summary(batch_size=4, seq_len=64).memory
    assert set(memory.phases) == {"training", "evaluation", "generation"} and memory.generate_batch == 8
    assert "generation (batch 8)" in repr(s.summary(batch_size=4, seq_len=64))
    short, long = (estimate_memory(s.model, 4, 64, generate_batch=8, new_tokens=n).generation for n in (16, 256))
    assert long > short
    assert s.summary(eval_batch_size=2).memory.generate_batch == 2  # the run's eval_batch_size sizes it too
    classifier = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    assert "generation" not in classifier.summary().memory.phases
