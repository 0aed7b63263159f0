"""The session's one processor slot: found as AutoProcessor finds it, saved and reloaded with the session, shown in
its repr and summary; ``tokenizer`` is its text view."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import nbtune
from nbtune.core.data.processor import describe, reads, text_view, with_text_view


class Flatten(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 3)

    def forward(self, input):
        return self.fc(input.flatten(1))


def image_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": 2, "width": 2}, do_normalize=True)


def test_a_text_model_gets_its_tokenizer_as_processor(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    assert s.processor is not None and s.tokenizer is s.processor
    assert reads(s.processor) == ["text"]
    assert f"processor={type(s.processor).__name__} (text)" in repr(s)
    assert f"processor: {type(s.processor).__name__} (text)" in repr(s.summary())
    assert "processor:" in s.summary()._repr_html_()


def test_an_image_processor_is_saved_and_reloaded_with_the_session(tmp_path):
    torch.manual_seed(0)
    s = nbtune.load(Flatten(), processor=image_processor())
    assert s.tokenizer is None and reads(s.processor) == ["images"]
    s.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "preprocessor_config.json").is_file()
    meta = json.loads((tmp_path / "saved" / "nbtune.json").read_text())
    assert meta["processor"] == type(s.processor).__name__ and meta["processor_not_saved"] is None
    again = nbtune.load(Flatten(), adapter=tmp_path / "saved")
    assert type(again.processor) is type(s.processor)
    assert again.processor.size == s.processor.size and again.processor.image_mean == s.processor.image_mean
    assert torch.equal(again.model.fc.weight, s.model.fc.weight)


def test_a_python_transform_is_named_not_saved_and_can_be_given_back(tmp_path):
    def transform(x):
        return x * 2

    s = nbtune.load(Flatten(), processor=transform)
    assert s.processor is transform and describe(s.processor) == "function"
    report = s.save(tmp_path / "saved")
    assert any("Python code" in note and "processor=" in note for note in report.notes), report
    meta = json.loads((tmp_path / "saved" / "nbtune.json").read_text())
    assert meta["processor"] is None and meta["processor_not_saved"] == "function"
    again = nbtune.load(Flatten(), adapter=tmp_path / "saved", processor=transform)
    assert again.processor is transform


def test_processor_and_tokenizer_together_are_refused(tiny_dirs):
    with pytest.raises(nbtune.ModelLoadError, match="same slot"):
        nbtune.load(tiny_dirs["bert"], task="text-classification", processor=False, tokenizer=False)


def test_tokenizer_false_means_no_processor_and_setting_the_tokenizer_fills_the_slot(tiny_dirs, tokenizer):
    s = nbtune.load(tiny_dirs["bert"], task="masked-lm", tokenizer=False)
    assert s.processor is None and s.tokenizer is None and "processor=" not in repr(s)
    s.tokenizer = tokenizer
    assert s.processor is tokenizer


def test_a_folder_saved_before_the_processor_slot_still_reloads_its_tokenizer(tiny_dirs, tmp_path):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    s.save(tmp_path / "saved")
    meta_path = tmp_path / "saved" / "nbtune.json"
    meta = json.loads(meta_path.read_text())
    del meta["processor"], meta["processor_not_saved"]  # what an older nbtune wrote
    meta_path.write_text(json.dumps(meta))
    again = nbtune.load(tmp_path / "saved")
    assert again.tokenizer is not None
    assert again.tokenizer("a fine film")["input_ids"] == s.tokenizer("a fine film")["input_ids"]


def test_the_text_view_of_a_multimodal_processor_is_its_tokenizer(tokenizer):
    images = image_processor()
    processor = SimpleNamespace(tokenizer=tokenizer, image_processor=images)
    assert text_view(processor) is tokenizer and reads(processor) == ["text", "images"]
    assert text_view(images) is None
    replacement = SimpleNamespace(convert_tokens_to_ids=lambda t: 0, pad_token="[PAD]")  # a tokenizer's shape
    assert with_text_view(processor, replacement) is processor  # only the text part is replaced
    assert processor.tokenizer is replacement and processor.image_processor is images
    assert with_text_view(images, tokenizer) is tokenizer  # an image processor has no text part to replace
