"""nbtune.load: every task from local folders, GGUF, nn.Module, meta device, and the errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nbtune
from nbtune import MetaModelError, ModelLoadError, TaskError


@pytest.mark.parametrize(
    "kind, task, cls",
    [
        ("bert", "text-classification", "BertForSequenceClassification"),
        ("bert", "token-classification", "BertForTokenClassification"),
        ("bert", "question-answering", "BertForQuestionAnswering"),
        ("bert", "masked-lm", "BertForMaskedLM"),
        ("gpt2", "causal-lm", "GPT2LMHeadModel"),
        ("gpt2", "text-classification", "GPT2ForSequenceClassification"),
        ("llama", "causal-lm", "LlamaForCausalLM"),
        ("t5", "seq2seq", "T5ForConditionalGeneration"),
    ],
)
def test_each_task_loads_its_auto_class(tiny_dirs, kind, task, cls):
    s = nbtune.load(tiny_dirs[kind], task=task)
    assert type(s.model).__name__ == cls
    assert s.task == task
    assert s.tokenizer is not None
    assert next(s.model.parameters()).dtype == torch.float32


def test_task_inferred_from_config(tiny_dirs):
    assert nbtune.load(tiny_dirs["gpt2"]).task == "causal-lm"
    assert nbtune.load(tiny_dirs["t5"]).task == "seq2seq"
    assert nbtune.load(tiny_dirs["bert"]).task == "text-classification"


def test_classification_labels_and_regression(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", labels=["neg", "neu", "pos"])
    assert s.model.classifier.out_features == 3
    assert s.model.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    r = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=1)
    assert r.model.classifier.out_features == 1
    assert r.model.config.problem_type == "regression"
    out = r.model(input_ids=torch.tensor([[2, 10, 11, 3]]), labels=torch.tensor([0.5]))
    assert out.loss.ndim == 0  # MSE, not cross-entropy


def test_sentence_pair_tokenizes_as_pair(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    enc = s.tokenizer("a good film", "a bad film", return_tensors="pt")
    out = s.model(**enc)
    assert out.logits.shape == (1, 2)
    assert enc["input_ids"][0].tolist().count(s.tokenizer.sep_token_id) == 2


def test_decoder_classification_gets_a_pad_token(tiny_dirs, tokenizer):
    s = nbtune.load(tiny_dirs["gpt2"], task="text-classification", num_labels=2)
    assert s.model.config.pad_token_id is not None


def test_weights_false_builds_on_meta(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", weights=False)
    assert s.is_meta
    assert len(s.layers()) > 5
    assert s.summary().total == sum(p.numel() for p in s.model.parameters())
    with pytest.raises(MetaModelError, match="weights=True"):
        s.require_weights("train")


def test_any_module(cnn):
    s = nbtune.load(cnn)
    assert s.model is cnn and s.tokenizer is None and s.task is None
    assert s.layers()["fc"].shapes == {"weight": (3, 8), "bias": (3,)}


def test_transformers_module_object_keeps_task(tiny_dirs):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"])
    assert nbtune.load(model, tokenizer=str(tiny_dirs["llama"])).task == "causal-lm"


@pytest.mark.slow
def test_gguf_smollm2(smollm_gguf):
    s = nbtune.load(smollm_gguf)  # the .gguf path itself; the folder + gguf_file= form is equivalent
    assert s.task == "causal-lm"
    assert type(s.model).__name__ == "LlamaForCausalLM"
    assert 130e6 < s.summary().total < 140e6
    assert s.tokenizer.chat_template
    enc = s.tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = s.model(**enc).logits
    assert torch.isfinite(logits).all()
    assert s.freeze("all").trainable_after == 0
    assert [n for n in s.select("qkv").matches["qkv"]][:3] == [
        "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj"]


def test_gguf_folder_without_file_name_says_which(smollm_gguf):
    with pytest.raises(ModelLoadError, match="gguf_file='SmolLM2-135M-Instruct.Q4_1.gguf'"):
        nbtune.load(smollm_gguf.parent)


# -- errors --------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(ModelLoadError, match="No such file or folder"):
        nbtune.load(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="No such file or folder"):
        nbtune.load("./models/bert")


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        nbtune.load(tmp_path)


def test_hub_id_offline_says_how_to_use_a_folder():
    with pytest.raises(ModelLoadError) as err:
        nbtune.load("nbtune-test-org/no-such-model", task="text-classification")
    msg = str(err.value)
    assert "nbtune-test-org/no-such-model" in msg and "--local-dir" in msg and "nbtune.load('./model'" in msg


def test_unknown_task(tiny_dirs):
    with pytest.raises(TaskError, match="Known tasks: text-classification"):
        nbtune.load(tiny_dirs["bert"], task="translation-with-pictures")


def test_task_the_architecture_lacks(tiny_dirs):
    with pytest.raises(TaskError) as err:
        nbtune.load(tiny_dirs["llama"], task="masked-lm")
    assert "no masked-lm head" in str(err.value) and "causal-lm" in str(err.value)


def test_num_labels_on_a_generation_task(tiny_dirs):
    with pytest.raises(TaskError, match="classification tasks"):
        nbtune.load(tiny_dirs["gpt2"], task="causal-lm", num_labels=3)


def test_bad_source_type():
    with pytest.raises(ModelLoadError, match="nn.Module"):
        nbtune.load(42)


def test_trust_remote_code_is_off_by_default(tiny_dirs, monkeypatch):
    import transformers

    seen = {}
    real = transformers.AutoConfig.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", spy)
    nbtune.load(tiny_dirs["bert"], task="text-classification")
    assert seen["trust_remote_code"] is False


def test_real_minilm_classifier_head(minilm_dir):
    s = nbtune.load(minilm_dir, task="text-classification", num_labels=2)
    assert tuple(s.model.classifier.weight.shape) == (2, 384)
    assert any("classifier" in n for n in s.notes)  # the fresh head is reported
    enc = s.tokenizer(["a gripping film", "dull"], padding=True, return_tensors="pt")
    assert s.model(**enc).logits.shape == (2, 2)


def test_module_that_is_not_a_model_still_lists(cnn):
    s = nbtune.load(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    assert s.select("head").matches["head"] == ["2"]


# -- safe loading ---------------------------------------------------------------------------------------


def _pickle_only(src, dst):
    import shutil

    from safetensors.torch import load_file

    shutil.copytree(src, dst)
    weights = load_file(str(dst / "model.safetensors"))
    (dst / "model.safetensors").unlink()
    torch.save(weights, dst / "pytorch_model.bin")
    return dst


def test_pickle_only_weights_need_an_explicit_opt_in(tiny_dirs, tmp_path):
    folder = _pickle_only(tiny_dirs["bert"], tmp_path / "pickled")
    with pytest.raises(ModelLoadError, match="only as a pickle file \\(pytorch_model.bin\\).*allow_pickle=True"):
        nbtune.load(folder, task="text-classification", num_labels=2)
    s = nbtune.load(folder, task="text-classification", num_labels=2, allow_pickle=True)
    ref = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    assert torch.equal(s.model.bert.embeddings.word_embeddings.weight, ref.model.bert.embeddings.word_embeddings.weight)


def test_a_malicious_pickle_is_an_nbtune_error_and_runs_nothing(tiny_dirs, tmp_path):
    folder = _pickle_only(tiny_dirs["bert"], tmp_path / "evil")
    marker = tmp_path / "pwned"
    # a pickle that would call os.system("touch marker") when unpickled in full
    payload = b"\x80\x02cposix\nsystem\nq\x00X" + len(f"touch {marker}").to_bytes(4, "little") + \
        f"touch {marker}".encode() + b"q\x01\x85q\x02Rq\x03."
    (folder / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(ModelLoadError, match="hold more than plain tensors") as info:
        nbtune.load(folder, task="text-classification", num_labels=2, allow_pickle=True)
    assert "weights_only=False" not in str(info.value)
    assert not marker.exists()


def test_a_corrupt_safetensors_file_names_the_folder(tiny_dirs, tmp_path):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(tiny_dirs["bert"], folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match=f"Could not load the weights in {folder}"):
        nbtune.load(folder, task="text-classification", num_labels=2)


@pytest.mark.slow
def test_a_merged_gguf_model_saves_as_safetensors_and_reloads_the_same(smollm_gguf, tmp_path):
    """Was: merge() then save() raised transformers' "quantized with gguf and is not serializable"."""
    s = nbtune.load(smollm_gguf, task="causal-lm")
    assert any("de-quantized on load" in n for n in s.notes)
    s.add_lora(r=2, targets=["q_proj"])
    torch.nn.init.normal_(next(p for n, p in s.model.named_parameters() if "lora_B" in n), std=0.05)
    ids = s.tokenizer("The cat sat on the", return_tensors="pt")["input_ids"]
    s.merge()
    with torch.no_grad():
        expected = s.model(ids).logits
    s.save(tmp_path / "merged")
    assert any(p.suffix == ".safetensors" for p in (tmp_path / "merged").iterdir())
    again = nbtune.load(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(again.model(ids).logits, expected, rtol=1e-4, atol=1e-4)
