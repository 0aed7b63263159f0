"""The chunked causal-LM loss (nbtune.core.model.chunked_loss): the same loss and gradients as the model's own
forward to 1e-5 in float32, on the architectures and adapters nbtune trains; the model's own path where chunking
cannot stand in for it; and a memory estimate that follows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, PromptTuningConfig, get_peft_model

from nbtune.core.model.chunked_loss import (
    chunk_size,
    chunkable_parts,
    chunked_causal_lm_loss,
    linear_cross_entropy,
    linear_token_logps,
)
from nbtune.core.model.memory import estimate_memory
from nbtune.core.tasks.preference import sequence_logps
from nbtune.core.tasks.registry import get_task
from tests.tiny_models import tiny_config

VOCAB = 300


def _model(kind: str, **config):
    torch.manual_seed(0)
    cfg = tiny_config(kind, VOCAB)
    for key, value in config.items():
        setattr(cfg, key, value)
    arch = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "chat": "LlamaForCausalLM"}[kind]
    return getattr(transformers, arch)(cfg).train()


def _batch(rows: int = 3, length: int = 17, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, VOCAB, (rows, length), generator=g)
    labels = ids.clone()
    labels[:, :4] = -100  # a prompt that is not trained
    labels[0, -3:] = -100  # padding at the end of one row
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _loss_and_grads(model, batch, chunked: bool):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # the same dropout masks on both paths
    if chunked:
        parts = chunkable_parts(model)
        assert parts is not None
        loss = chunked_causal_lm_loss(batch, parts).loss
    else:
        loss = model(**batch, use_cache=False).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def _assert_same(model, batch):
    full_loss, full = _loss_and_grads(model, batch, chunked=False)
    chunk_loss, chunked = _loss_and_grads(model, batch, chunked=True)
    assert torch.allclose(chunk_loss, full_loss, atol=1e-5, rtol=0), (chunk_loss, full_loss)
    assert full.keys() == chunked.keys() and full
    for name in full:
        assert torch.allclose(chunked[name], full[name], atol=1e-5, rtol=1e-4), name
    return full_loss


@pytest.mark.parametrize("kind, tied", [("llama", False), ("chat", True), ("gpt2", True)])
def test_loss_and_every_gradient_equal_the_full_computation(kind, tied):
    model = _model(kind)
    body, head = chunkable_parts(model)
    assert (head.weight is model.get_input_embeddings().weight) == tied
    _assert_same(model, _batch())


def test_chunk_boundaries_bias_and_ignored_tokens_give_the_plain_cross_entropy():
    """Direct use, chunks that split the tokens unevenly (7 of 40), a bias, ignored tokens inside a chunk and a
    whole chunk ignored: loss and the three gradients equal F.cross_entropy on the full logits."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(40, 16, generator=g, dtype=torch.float64).float().requires_grad_()
    weight = torch.randn(50, 16, generator=g).requires_grad_()
    bias = torch.randn(50, generator=g).requires_grad_()
    labels = torch.randint(0, 50, (40,), generator=g)
    labels[3] = labels[10] = -100
    labels[14:21] = -100  # the third chunk entirely
    reference = F.cross_entropy(hidden @ weight.T + bias, labels, ignore_index=-100)
    expected = torch.autograd.grad(reference, (hidden, weight, bias))
    for chunk in (7, 40, 1000):
        loss = linear_cross_entropy(hidden, weight, labels, bias, chunk=chunk)
        got = torch.autograd.grad(loss, (hidden, weight, bias))
        assert torch.allclose(loss, reference, atol=1e-6)
        for a, b in zip(got, expected):
            assert torch.allclose(a, b, atol=1e-6)
    assert torch.isnan(linear_cross_entropy(hidden, weight, torch.full((40,), -100), bias, chunk=7))


def test_per_token_log_probs_and_their_gradients_under_any_weighting():
    """What DPO and ORPO use: each token's log-probability, 0 where ignored, and gradients under an arbitrary
    upstream gradient per token (a sequence sum, a mean, a sigmoid of a margin), equal to log_softmax's."""
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 19, 16, generator=g).requires_grad_()
    weight = torch.randn(50, 16, generator=g).requires_grad_()
    labels = torch.randint(0, 50, (2, 19), generator=g)
    labels[1, :5] = -100
    upstream = torch.randn(2, 19, generator=g)
    full = torch.log_softmax(hidden @ weight.T, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    full = full * (labels != -100)
    expected = torch.autograd.grad((full * upstream).sum(), (hidden, weight))
    logps = linear_token_logps(hidden, weight, labels, chunk=6)
    assert logps.shape == labels.shape and torch.allclose(logps, full, atol=1e-6)
    assert bool((logps[1, :5] == 0).all())
    for a, b in zip(torch.autograd.grad((logps * upstream).sum(), (hidden, weight)), expected):
        assert torch.allclose(a, b, atol=1e-6)


def test_preference_log_probs_and_the_dpo_gradient_equal_the_full_logits():
    """The preference task's answer log-probabilities through the chunks equal sequence_logps on the model's own
    logits, and so does a DPO-shaped loss's gradient, with LoRA through peft."""
    model = get_peft_model(_model("llama"), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                                                      init_lora_weights=False))
    task = get_task("preference")()
    batch = {}
    for side, seed in (("chosen", 1), ("rejected", 2)):
        part = _batch(rows=2, length=15, seed=seed)
        batch.update({f"{side}_{key}": value for key, value in part.items()})

    def dpo_like(chunked: bool):
        model.zero_grad(set_to_none=True)
        if chunked:
            chosen, rejected, n_chosen, n_rejected = task.logps(model, batch)
        else:
            joined = task._joined(batch)
            logits = model(input_ids=joined["input_ids"], attention_mask=joined["attention_mask"]).logits
            total, count = sequence_logps(logits, joined["labels"])
            chosen, rejected, n_chosen, n_rejected = total[:2], total[2:], count[:2], count[2:]
        loss = -F.logsigmoid(0.1 * (chosen - rejected)).mean() - (chosen / n_chosen).mean()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return torch.stack([chosen, rejected]).detach(), torch.stack([n_chosen, n_rejected]), grads

    assert chunkable_parts(model) is not None
    full_logps, full_counts, full_grads = dpo_like(chunked=False)
    logps, counts, grads = dpo_like(chunked=True)
    assert torch.equal(counts, full_counts) and torch.allclose(logps, full_logps, atol=1e-4, rtol=1e-5)
    assert grads.keys() == full_grads.keys() and grads
    for name in grads:
        assert torch.allclose(grads[name], full_grads[name], atol=1e-5, rtol=1e-4), name


def test_lora_and_packed_rows_train_alike():
    """LoRA through peft (on the attention and MLP, not the head) and a packed batch (rows kept apart by position
    ids, no attention mask) train to the same gradients of the adapter weights."""
    model = get_peft_model(_model("llama"), LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"],
                                                      lora_dropout=0.0, init_lora_weights=False))
    assert chunkable_parts(model) is not None
    _assert_same(model, _batch())
    packed = _batch(rows=2, length=24)
    del packed["attention_mask"]
    packed["position_ids"] = torch.cat([torch.arange(10), torch.arange(14)]).repeat(2, 1)
    packed["labels"][:, 10] = -100  # the first token of the second sequence predicts nothing from the first
    _assert_same(model, packed)


def test_the_models_own_path_where_chunking_cannot_stand_in_for_it():
    """A LoRA-adapted head, a prompt-learning adapter, a head that peft trains as a copy and soft-capped logits keep
    the model's forward; the task's forward then returns the model's own output (with its logits)."""
    lora_head = get_peft_model(_model("llama"), LoraConfig(r=2, target_modules=["q_proj", "lm_head"]))
    prompt = get_peft_model(_model("llama"), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    saved_head = get_peft_model(_model("llama"), LoraConfig(r=2, target_modules=["q_proj"],
                                                           modules_to_save=["lm_head"]))
    capped = _model("llama", final_logit_softcapping=30.0)
    for model in (lora_head, prompt, saved_head, capped):
        assert chunkable_parts(model) is None
    task = get_task("causal-lm")()
    batch = _batch()
    assert task.forward(prompt, batch).logits is not None
    plain = _model("llama")
    out = task.forward(plain, batch)
    assert out.logits is None and torch.allclose(out.loss, plain(**batch).loss, atol=1e-5)
    assert task.forward(plain, {k: v for k, v in batch.items() if k != "labels"}).logits is not None


def test_bf16_autocast_follows_the_output_layers_dtype():
    """Under bf16 autocast the chunks' matmuls run in bf16 as nn.Linear would, the loss in float32: the chunked
    loss stays within bf16 rounding of the model's and the gradients keep the parameters' dtype."""
    model = _model("llama")
    batch = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        full = model(**batch, use_cache=False).loss
        chunked = chunked_causal_lm_loss(batch, chunkable_parts(model)).loss
    assert chunked.dtype == torch.float32
    assert abs(float(chunked.detach()) - float(full)) < 2e-2
    chunked.backward()
    assert model.lm_head.weight.grad.dtype == torch.float32


def test_the_memory_estimate_counts_one_chunk_of_logits():
    """With the chunked loss the estimate holds one chunk's logits, not every token's: far less for a long batch,
    the same for a model chunking cannot serve; the assumptions say how many tokens a chunk has."""
    model = _model("llama")
    vocab = model.config.vocab_size
    full = estimate_memory(model, 16, 1024, device="cuda")
    chunked = estimate_memory(model, 16, 1024, device="cuda", chunked_logits=True)
    assert chunked.chunked_logits and not full.chunked_logits
    saved = full.activations - chunked.activations
    assert saved >= 16 * 1024 * vocab * 12 - chunk_size(vocab) * vocab * 16
    assert f"logits {chunk_size(vocab)} tokens at a time" in chunked.assumptions
    capped = _model("llama", final_logit_softcapping=30.0)
    assert estimate_memory(capped, 16, 1024, device="cuda", chunked_logits=True).activations == \
        estimate_memory(capped, 16, 1024, device="cuda").activations
