"""Next-token cross-entropy computed from the final hidden states in chunks, never holding the whole
``[tokens, vocabulary]`` logits tensor.

A causal LM step that asks the model for its logits holds, per token and vocabulary entry, the logits at the compute
dtype, the loss's float32 copy, its log-softmax and their gradient: 12-14 bytes a logit (``nbtune.core.model.memory``),
about 10 GB of a 27 GB SmolLM2 step at 16 x 1,024 tokens. Here the forward pass keeps only the hidden states and one
chunk's logits at a time; the backward pass recomputes each chunk's logits and turns them straight into the gradients
of the hidden states and of the output layer (the softmax minus the one-hot target), as Liger's fused-linear
cross-entropy and TRL's chunked log-probs do, in plain PyTorch so that it runs on every device. The result equals
``F.cross_entropy(hidden @ weight.T + bias, labels, ignore_index=-100)``: the same float32 arithmetic per token.

One autograd function serves every objective: ``linear_token_logps`` gives each token's log-probability of its label
(SFT's loss is their negated mean; DPO and ORPO sum them per answer), and its backward needs only the hidden states
and each token's log-sum-exp, one float per token.
"""

from __future__ import annotations

import torch
from torch import nn

IGNORE = -100
# at most this many tokens per chunk; chunk_size picks fewer for large vocabularies (SmolLM2's 49,152: 682 tokens,
# a chunk's logits and softmax about 0.5 GB at their peak against 10 GB for 16 x 1,024 tokens at once); more chunks
# only add kernel launches, a few per thousand tokens
CHUNK_TOKENS = 4096
# settings by which a model transforms its logits after the output layer (soft-capping, scaling): chunking computes
# plain ``hidden @ weight.T``, so a model with any of them keeps its own forward
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale",
                    "logit_softcapping")


def chunk_size(vocab: int, budget_bytes: int = 256 << 20) -> int:
    """Tokens per chunk so that one chunk's float32 logits and softmax stay under ``budget_bytes`` (at most
    ``CHUNK_TOKENS``)."""
    return max(1, min(CHUNK_TOKENS, budget_bytes // (8 * max(vocab, 1))))


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype the output layer's matmul runs in: autocast's where it is on (as ``nn.Linear`` would), else the
    hidden states'."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hidden.dtype


def _chunk_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype):
    logits = hidden.to(dtype) @ weight.to(dtype).T
    if bias is not None:
        logits = logits + bias.to(dtype)
    return logits.float()  # the loss in float32, as transformers' ForCausalLMLoss upcasts


class _LinearTokenLogps(torch.autograd.Function):
    """Each token's log-probability of its label under ``softmax(hidden @ weight.T + bias)``, 0 where the label is
    IGNORE, computed ``chunk`` tokens at a time. Backward: d logp / d logits = one_hot(label) - softmax, recomputed
    per chunk from the saved hidden states and each token's log-sum-exp."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk):
        dtype = _compute_dtype(hidden)
        valid = labels != IGNORE
        safe = labels.clamp(min=0)
        logps = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(logps)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], chunk):
                part = slice(start, start + chunk)
                logits = _chunk_logits(hidden[part], weight, bias, dtype)
                lse[part] = torch.logsumexp(logits, dim=-1)
                logps[part] = logits.gather(1, safe[part].unsqueeze(1)).squeeze(1) - lse[part]
        logps = logps.masked_fill(~valid, 0.0)
        ctx.save_for_backward(hidden, weight, bias, labels, lse)
        ctx.chunk, ctx.dtype = chunk, dtype
        return logps

    @staticmethod
    def backward(ctx, grad_logps):
        hidden, weight, bias, labels, lse = ctx.saved_tensors
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
        grad_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_bias else None
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], ctx.chunk):
                part = slice(start, start + ctx.chunk)
                target = labels[part]
                valid = target != IGNORE
                # d loss / d logits = g * (one_hot(target) - softmax), zero on ignored tokens; built in place
                grad = _chunk_logits(hidden[part], weight, bias, ctx.dtype)
                grad.sub_(lse[part].unsqueeze(1)).exp_().neg_()  # in place: one [chunk, vocabulary] tensor
                rows = torch.arange(grad.shape[0], device=grad.device)
                grad[rows[valid], target[valid]] += 1
                grad *= (grad_logps[part].float() * valid).unsqueeze(1)
                if need_hidden:
                    grad_hidden[part] = (grad.to(ctx.dtype) @ weight.to(ctx.dtype)).to(hidden.dtype)
                if need_weight:
                    grad_weight += grad.T @ hidden[part].float()
                if need_bias:
                    grad_bias += grad.sum(0)
        return (grad_hidden, grad_weight.to(weight.dtype) if need_weight else None,
                grad_bias.to(bias.dtype) if need_bias else None, None, None)


def linear_token_logps(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                       bias: torch.Tensor | None = None, chunk: int | None = None) -> torch.Tensor:
    """Each token's float32 log-probability of its label under the logits ``hidden @ weight.T + bias`` (0 where the
    label is -100), computed ``chunk`` tokens at a time in the forward and the backward pass (default:
    ``chunk_size`` of the vocabulary). ``hidden`` is ``[..., H]``, ``labels`` the matching ``[...]`` (already
    shifted for a causal LM); the result has ``labels``' shape."""
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_labels = labels.reshape(-1).to(hidden.device)
    logps = _LinearTokenLogps.apply(flat_hidden, weight, bias, flat_labels, chunk or chunk_size(weight.shape[0]))
    return logps.reshape(labels.shape)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                         bias: torch.Tensor | None = None, chunk: int | None = None) -> torch.Tensor:
    """Mean cross-entropy over the tokens whose label is not -100 (``linear_token_logps``, negated and averaged):
    ``F.cross_entropy(hidden @ weight.T + bias, labels, ignore_index=-100)`` without the whole logits tensor. No
    labelled token: NaN, as ``F.cross_entropy`` gives."""
    return _mean_nll(linear_token_logps(hidden, weight, labels, bias, chunk), labels)


def _mean_nll(logps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The negated mean of the labelled tokens' log-probabilities (0 on ignored ones): the cross-entropy."""
    return -logps.sum() / (labels != IGNORE).sum().to(logps.device)


def chunkable_parts(model: nn.Module) -> tuple[nn.Module, nn.Linear] | None:
    """(the decoder body, the output layer) of a causal LM whose logits are exactly ``output_layer(body(...))``, or
    None where chunking cannot stand in for the model's forward: no separate body, an output layer that is not a
    plain linear one (a LoRA-adapted head keeps the model's path), logits transformed after it, or a prompt-learning
    adapter that changes the inputs in its own forward."""
    if getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", False):
        return None
    config = getattr(model, "config", None)
    if config is None or any(getattr(config, name, None) not in (None, 1, 1.0) for name in LOGIT_TRANSFORMS):
        return None
    get_decoder, get_head = getattr(model, "get_decoder", None), getattr(model, "get_output_embeddings", None)
    if not callable(get_decoder) or not callable(get_head):
        return None
    try:
        body, head = get_decoder(), get_head()
    except (AttributeError, NotImplementedError):
        return None
    if body is None or body is model or type(head) is not nn.Linear:
        return None
    return body, head


class ChunkedOutput:
    """What a chunked forward returns in place of the model's output: the loss, and no logits (none were held)."""

    logits = None

    def __init__(self, loss: torch.Tensor):
        self.loss = loss


def causal_token_logps(parts: tuple[nn.Module, nn.Linear], inputs: dict[str, torch.Tensor],
                       labels: torch.Tensor) -> torch.Tensor:
    """``[batch, length - 1]``: each position's log-probability of the next label (shifted by one, as transformers
    does), through ``parts`` (``chunkable_parts`` of the model): the body, then the output layer in chunks."""
    body, head = parts
    hidden = body(**inputs, use_cache=False).last_hidden_state
    return linear_token_logps(hidden[:, :-1], head.weight, labels[:, 1:], head.bias)


def chunked_causal_lm_loss(batch: dict[str, torch.Tensor], parts: tuple[nn.Module, nn.Linear]) -> ChunkedOutput:
    """A causal LM's mean next-token loss on ``batch`` (its ``labels``) through ``parts``, as the model's own forward
    computes it from its logits."""
    labels = batch["labels"]
    logps = causal_token_logps(parts, {k: v for k, v in batch.items() if k != "labels"}, labels)
    return ChunkedOutput(_mean_nll(logps, labels[:, 1:]))
