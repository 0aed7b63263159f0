"""Loading to fit: 4/8-bit weights through bitsandbytes (on this CPU), gradient checkpointing, the fit verdict, and
merging an adapter into a quantized base."""

from __future__ import annotations

import pytest
import torch

import nbtune
from nbtune.core.common.errors import ModelLoadError, SelectorError

pytest.importorskip("bitsandbytes")

TEXTS = ["the movie was great and fun", "a dull and boring film", "what a lovely story", "bad acting all around"] * 8


def _logits(session, tokenizer, text="a fine film with a good story"):
    batch = tokenizer([text], return_tensors="pt")
    session.model.eval()
    with torch.no_grad():
        return session.model(**batch).logits


def test_a_4bit_load_packs_block_weights_and_counts_them_as_the_float_model(chat_dir):
    full = nbtune.load(chat_dir)
    q = nbtune.load(chat_dir, quantize="4bit")
    q_proj = q.model.model.layers[0].self_attn.q_proj
    assert type(q_proj).__name__ == "Linear4bit" and q_proj.weight.quant_type == "nf4"
    assert q.source.quantize == "4bit" and any("NF4, double quantization" in n for n in q.notes)
    # the tree shows logical shapes and the 4-bit dtype, the counts are the float model's (tied head counted once)
    row = {r.name: r for r in q.layers().rows}["model.layers.0.self_attn.q_proj"]
    assert row.shapes == {"weight": (64, 64)} and row.dtype == "nf4"
    assert q.summary().total == full.summary().total
    assert q.summary().memory.weights < 0.5 * full.summary().memory.weights
    assert q.summary().trainable == 0  # prepared for k-bit training: the base is frozen


def test_quantized_weights_refuse_to_unfreeze_and_the_rest_unfreezes(chat_dir):
    s = nbtune.load(chat_dir, quantize="4bit")
    with pytest.raises(SelectorError, match="quantized weights .* cannot train.*add_lora"):
        s.unfreeze("model.layers.0.self_attn.q_proj")
    assert s.summary().trainable == 0
    report = s.unfreeze("all")
    assert any("quantized weights frozen" in n for n in report.notes)
    assert all(not p.requires_grad for p in s.model.parameters() if type(p).__name__ == "Params4bit")
    assert s.summary().trainable == sum(p.numel() for p in s.model.parameters() if p.dtype.is_floating_point)


def test_4bit_lora_learns_even_after_an_inference_forward(chat_dir, tokenizer):
    """bitsandbytes repacks 4-bit CPU weights on a no-grad forward, after which backward gave no gradient."""
    s = nbtune.load(chat_dir, quantize="4bit")
    s.add_lora(r=4)
    s.evaluate(TEXTS[:4])  # an inference forward before training
    s.train(TEXTS, max_steps=6, batch_size=8, lr=1e-2, log=False, save_run=False)
    losses = s.history.to_pandas()["loss"].dropna().tolist()
    assert losses[-1] < losses[0] - 0.1


def test_gradient_checkpointing_gives_the_same_steps_and_a_smaller_estimate(chat_dir):
    runs = {}
    for on in (False, True):
        s = nbtune.load(chat_dir, gradient_checkpointing=on)
        s.freeze("embeddings")  # non-reentrant checkpointing needs no input that requires grad
        s.add_lora(r=4)
        assert s.gradient_checkpointing is on
        runs[on] = (s.summary(batch_size=16, seq_len=128).memory.activations,
                    s.train(TEXTS, max_steps=4, batch_size=8, lr=1e-2, log=False, save_run=False),
                    s.history.to_pandas()["loss"].dropna().tolist())
    assert runs[True][2] == pytest.approx(runs[False][2], rel=1e-5)
    assert runs[True][2][-1] < runs[True][2][0]
    assert runs[True][0] < runs[False][0]  # two blocks: one recomputes, the other keeps only its input
    s.gradient_checkpointing = False
    assert not s.gradient_checkpointing


def test_merging_into_a_4bit_base_dequantizes_and_saves_plain_safetensors(chat_dir, tmp_path):
    s = nbtune.load(chat_dir, quantize="4bit")
    s.add_lora(r=4)
    s.train(TEXTS, max_steps=3, batch_size=8, lr=1e-2, log=False, save_run=False)
    tok = s.tokenizer
    tuned = _logits(s, tok)
    s.save(tmp_path / "adapter")
    notes = s.merge()
    assert any("de-quantized" in n and "full-precision copy" in n for n in notes)
    assert not any(type(p).__name__ == "Params4bit" for p in s.model.parameters())
    assert torch.allclose(_logits(s, tok), tuned, atol=1e-4)
    s.save(tmp_path / "merged")
    assert list((tmp_path / "merged").glob("*.safetensors"))
    reloaded = nbtune.load(tmp_path / "merged")
    assert reloaded.source.quantize is None
    assert torch.allclose(_logits(reloaded, tok), tuned, atol=1e-4)
    # the adapter alone goes back onto a 4-bit base, quantized the same way, with the same logits
    again = nbtune.load(tmp_path / "adapter")
    assert again.source.quantize == "4bit"
    assert torch.equal(_logits(again, tok), tuned)


def test_8bit_load_trains_lora(chat_dir):
    s = nbtune.load(chat_dir, quantize="8bit")
    assert type(s.model.model.layers[0].mlp.up_proj).__name__ == "Linear8bitLt"
    assert s.layers().rows[0].dtype.count("int8") == 1
    s.add_lora(r=4)
    s.train(TEXTS, max_steps=4, batch_size=8, lr=1e-2, log=False, save_run=False)
    losses = s.history.to_pandas()["loss"].dropna().tolist()
    assert losses[-1] < losses[0]


def test_the_fit_verdict_names_a_change_that_fits(chat_dir):
    s = nbtune.load(chat_dir)
    roomy = s.summary(batch_size=16, seq_len=256, device_memory=64)
    assert roomy.fit.fits and "fits on a device of 64" in roomy.fit.text
    needed = roomy.memory.total
    tight = s.summary(batch_size=16, seq_len=256, device_memory=needed / 2**30 / 4)
    assert not tight.fit.fits and tight.fit.change
    assert tight.fit.change_needs <= tight.fit.capacity < tight.fit.needed
    assert "To fit:" in repr(tight) and "does not fit" in tight._repr_html_()
    hopeless = s.summary(batch_size=16, seq_len=256, device_memory=1e-6)
    assert not hopeless.fit.fits and hopeless.fit.change is None and "smaller model" in hopeless.fit.text


def test_bad_quantize_settings_are_refused_before_loading(chat_dir, cnn, smollm_gguf):
    with pytest.raises(ModelLoadError, match="'4bit', '8bit' or None"):
        nbtune.load(chat_dir, quantize="3bit")
    with pytest.raises(ModelLoadError, match="nn.Module is already in memory"):
        nbtune.load(cnn, quantize="4bit")
    with pytest.raises(ModelLoadError, match="cannot quantize them again.*s.save"):
        nbtune.load(smollm_gguf, quantize="4bit")
    with pytest.raises(ModelLoadError, match="weights=False"):
        nbtune.load(chat_dir, quantize="4bit", weights=False)


def test_language_models_load_in_float32_on_a_cpu_by_default(chat_dir):
    assert next(nbtune.load(chat_dir).model.parameters()).dtype == torch.float32
    from nbtune.core.model.quantize import default_dtype

    assert default_dtype(generative=False, quantize=None) == torch.float32


def test_a_recipe_exported_from_a_4bit_session_loads_it_the_same_way(chat_dir, tmp_path):
    import yaml

    s = nbtune.load(chat_dir, quantize="4bit", gradient_checkpointing=True)
    s.add_lora(r=4)
    recipe = yaml.safe_load(s.export(tmp_path / "recipe.yaml").read_text())
    assert recipe["quantize"] == "4bit" and recipe["gradient_checkpointing"] is True
    from nbtune.core.recipes.build import build_session
    from nbtune.core.recipes.spec import read_recipe

    again = build_session(read_recipe(tmp_path / "recipe.yaml"))
    assert again.source.quantize == "4bit" and again.gradient_checkpointing and again.adapters


def test_all_linear_covers_4bit_layers_and_a_saved_folder_loads_for_another_task(chat_dir, tmp_path):
    s = nbtune.load(chat_dir, quantize="4bit")
    info = s.add_lora(r=4, targets="all-linear")
    wrapped = {n.rsplit(".", 1)[-1] for n, m in s.model.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert info.method == "lora"
    nbtune.load(chat_dir).save(tmp_path / "chat-model")
    again = nbtune.load(tmp_path / "chat-model", task="dpo")
    assert again.task == "preference" and again.objective == "dpo"


def test_a_full_precision_save_reloaded_in_4bit_trains_only_what_is_chosen_and_says_so(chat_dir, tmp_path):
    """A folder saved from a full-precision session (everything trainable) and loaded with quantize='4bit' must not
    keep the embeddings and norms trainable (28.3M of SmolLM2's 134.5M did), and every view must say what trains."""
    nbtune.load(chat_dir).save(tmp_path / "full")
    q = nbtune.load(tmp_path / "full", quantize="4bit")
    assert q.summary().trainable == 0 and not q.trainable_parameters()
    assert any("saved in full precision" in n and "base starts frozen" in n for n in q.notes)
    assert not any("the base is frozen" in n for n in q.notes)  # the load note no longer claims a state
    assert "trains: nothing" in repr(q.summary())
    q.unfreeze("all")  # asked for: norms and embeddings train, the packed weights cannot
    text = repr(q.summary())
    assert "trains: Embedding" in text and "LlamaRMSNorm" in text and "(5 modules)" in text
    rows = {r.name: r for r in q.layers().rows}
    assert rows["model.layers.0"].trainable_state == "partial"  # its norms train, its 4-bit Linear weights do not
    assert rows["model.layers.0.input_layernorm"].trainable_state == "all"
    assert rows["model.layers.0.self_attn.q_proj"].trainable_state == "none"


def test_one_parameter_count_in_header_session_summary_and_saved_folder(chat_dir, tmp_path):
    import json

    from nbtune.core.training.events import FitStarted

    s = nbtune.load(chat_dir, quantize="4bit")
    s.add_lora(r=4, targets="all-linear")
    summary = s.summary()
    full = nbtune.load(chat_dir).summary()
    lora = sum(p.numel() for n, p in s.model.named_parameters() if "lora_" in n)
    assert summary.total == full.total + lora and summary.counts.base == full.total and summary.counts.adapter == lora
    assert f"{human(full.total)} base + {human(lora)} adapter" in repr(summary)
    started = []
    s.train(TEXTS, max_steps=1, batch_size=8, log=False, save_run=False,
            callbacks=[lambda e, control: started.append(e) if isinstance(e, FitStarted) else None])
    assert (started[0].total_params, started[0].trainable) == (summary.total, summary.trainable)
    s.save(tmp_path / "saved")
    meta = json.loads((tmp_path / "saved" / "nbtune.json").read_text())
    assert meta["parameters"] == {"total": summary.total, "base": full.total, "adapter": lora,
                                  "trainable": summary.trainable}
    assert nbtune.load(tmp_path / "saved").summary().total == summary.total


def human(n):
    from nbtune.render.format import human_count

    return human_count(n)


def test_the_estimate_covers_evaluation_at_its_batch_and_a_recipe_its_own_shapes(chat_dir):
    s = nbtune.load(chat_dir, quantize="4bit")
    s.add_lora(r=4)
    one = s.summary(batch_size=1, seq_len=256)  # the evaluation batch follows the run's rule: 1 x 2 for an LM
    assert one.memory.eval_batch_size == 2 and set(one.memory.phases) == {"training", "evaluation"}
    big_eval = s.summary(batch_size=1, seq_len=256, eval_batch_size=64).memory
    assert big_eval.peak_phase == "evaluation" and big_eval.total == big_eval.phases["evaluation"] > big_eval.training
    assert "evaluation (batch 64)" in repr(s.summary(batch_size=1, seq_len=256, eval_batch_size=64))
    on_gpu = s.summary(batch_size=1, seq_len=256, eval_batch_size=64, device_memory=64).memory  # device_memory: a GPU
    assert on_gpu.runtime == 0 and on_gpu.evaluation > on_gpu.training
    tight = s.summary(batch_size=1, seq_len=256, eval_batch_size=64,
                      device_memory=(on_gpu.training + 2**20) / 2**30 / 0.9)
    assert not tight.fit.fits and tight.fit.change.startswith("eval_batch_size=")  # training fits, evaluation not
    from nbtune.core.workflows.finetune import RecipeResult

    recipe = RecipeResult(s, train={"batch_size": 1, "max_length": 256}).summary().memory
    assert (recipe.batch_size, recipe.seq_len) == (1, 256)


def test_a_4bit_load_keeps_no_weight_in_the_checkpoint_file_mapping(chat_dir):
    """The weights left unquantized were views into transformers' memory-mapped checkpoint and kept the whole file
    resident; they own their memory now, and the tied head is still tied."""
    import re
    from pathlib import Path

    q = nbtune.load(chat_dir, quantize="4bit")
    mapped = [tuple(int(x, 16) for x in line.split()[0].split("-"))
              for line in Path("/proc/self/maps").read_text().splitlines()
              if re.search(rf"{re.escape(str(chat_dir))}/.*\.safetensors", line)]
    inside = [n for n, p in q.model.named_parameters() if any(a <= p.data_ptr() < b for a, b in mapped)]
    assert not inside
    assert q.model.lm_head.weight is q.model.model.embed_tokens.weight
