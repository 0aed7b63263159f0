"""GGUF out: SmolLM2 from its GGUF file, a LoRA merged, written back as GGUF (f32, f16, q8_0) with the source's
metadata and tokenizer; transformers loads the written file and gives the merged model's logits."""

from __future__ import annotations

import pytest
import torch

import nbtune
from nbtune.core.common.errors import NbtuneError


@pytest.mark.slow
def test_a_merged_gguf_model_round_trips_through_a_written_gguf(smollm_gguf, tmp_path):
    s = nbtune.load(smollm_gguf)
    s.add_lora(r=4)
    with pytest.raises(NbtuneError, match="merge them into the weights first"):
        s.export_gguf(tmp_path / "x.gguf")
    torch.manual_seed(0)
    with torch.no_grad():  # an adapter that changes the model, as training would
        for name, param in s.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.01)
    s.merge()
    batch = s.tokenizer(["The capital of France is", "Once upon a time"], return_tensors="pt", padding=True)
    with torch.no_grad():
        merged = s.model(**batch).logits
    tolerance = {"f32": 1e-4, "f16": 0.1, "q8_0": 2.0}
    for out_type, atol in tolerance.items():
        written = s.export_gguf(tmp_path / f"tuned-{out_type}.gguf", out_type=out_type)
        assert not list(tmp_path.glob("*.partial"))
        again = nbtune.load(written)
        with torch.no_grad():
            logits = again.model(**batch).logits
        assert (logits - merged).abs().max() < atol, out_type
        mask = batch["attention_mask"].bool()
        agree = (logits.argmax(-1) == merged.argmax(-1))[mask].float().mean()
        assert agree >= (1.0 if out_type != "q8_0" else 0.9)
        assert again.tokenizer.chat_template == s.tokenizer.chat_template
        assert again.tokenizer("hello world")["input_ids"] == s.tokenizer("hello world")["input_ids"]
    assert (tmp_path / "tuned-f16.gguf").stat().st_size < 0.6 * (tmp_path / "tuned-f32.gguf").stat().st_size


def test_models_from_other_sources_are_pointed_to_llama_cpp(chat_dir, tmp_path):
    s = nbtune.load(chat_dir)
    with pytest.raises(NbtuneError, match="convert_hf_to_gguf.py"):
        s.export_gguf(tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
