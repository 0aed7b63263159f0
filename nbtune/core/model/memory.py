"""A rough estimate of training memory: weights, gradients, AdamW state and activations.

Numbers only; rendering lives in ``nbtune.render``. The estimate is meant to answer "will this fit
and what should I change", not to predict the allocator to the megabyte.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nbtune.core.model.architecture import block_lists, embedding_module_names, embeddings_of, hidden_size
from nbtune.core.model.chunked_loss import chunk_size, chunkable_parts
from nbtune.core.model.params import ParamIndex, param_bytes
from nbtune.core.model.precision import compute_dtype as dtype_for
from nbtune.core.model.precision import resolve_precision
from nbtune.core.model.quantize import gradient_checkpointing_on, is_quantized_param

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


@dataclass
class MemoryEstimate:
    """Estimated bytes for one training step with AdamW, and for the run's other phases. ``activations`` is None
    when unknown. ``evaluation``: the peak of an evaluation batch of ``eval_batch_size`` (None when not
    estimated); ``phases`` both by name; ``total`` is the largest, what the run needs."""

    weights: int
    gradients: int
    optimizer: int
    activations: int | None
    batch_size: int
    seq_len: int
    assumptions: str
    eval_batch_size: int | None = None
    evaluation: int | None = None
    runtime: int = 0  # the framework's own working memory where it counts against the same memory (a CPU's RAM)
    device: str = "cpu"  # the kind of device estimated for ("cpu" or "cuda")
    generation: int | None = None  # the peak of generating in evaluation (seq2seq's ROUGE/BLEU), when estimated
    generate_batch: int | None = None
    chunked_logits: bool = False  # the LM loss holds one chunk of logits at a time (nbtune.core.model.chunked_loss)

    @property
    def training(self) -> int:
        return self.weights + self.gradients + self.optimizer + (self.activations or 0) + self.runtime

    @property
    def phases(self) -> dict[str, int]:
        """The peak of each phase the estimate covers: ``"training"``, and ``"evaluation"`` and ``"generation"``
        when estimated."""
        others = {"evaluation": self.evaluation, "generation": self.generation}
        return {"training": self.training, **{k: v for k, v in others.items() if v is not None}}

    @property
    def total(self) -> int:
        return max(self.phases.values())

    @property
    def peak_phase(self) -> str:
        """The phase that needs the most memory (``"training"`` when the phases tie)."""
        return max(self.phases, key=lambda k: (self.phases[k], k == "training"), default="training")


@dataclass(frozen=True)
class _Dims:
    hidden: int
    layers: int
    heads: int
    vocab: int
    intermediate: int
    kv_dim: int  # width of the key (and value) projection: smaller than hidden with grouped-query attention
    gated_mlp: bool  # SwiGLU-style MLP (Llama, Mistral, Qwen, T5 v1.1): gate, up, act and product are all kept
    eager_attention: bool  # the s x s attention probabilities are stored (no SDPA / flash kernel)
    attention_dropout: bool  # dropout on the attention probabilities in training
    dropout: bool


def _config_dims(model: nn.Module) -> _Dims | None:
    """Sizes from a transformers config, if the model has one."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return None
    get = lambda *keys: next((getattr(cfg, k) for k in keys if getattr(cfg, k, None)), None)  # noqa: E731
    hidden = hidden_size(model)
    layers = get("num_hidden_layers", "n_layer", "num_layers")
    heads = get("num_attention_heads", "n_head", "num_heads")
    vocab = get("vocab_size") or 0
    if not (hidden and layers and heads):
        return None
    if getattr(cfg, "is_encoder_decoder", False):
        layers += get("num_decoder_layers") or layers
    intermediate = get("intermediate_size", "n_inner", "d_ff", "ffn_dim") or 4 * hidden
    head_dim = get("head_dim") or hidden // heads
    kv_heads = get("num_key_value_heads") or heads
    act = str(get("hidden_act", "activation_function", "feed_forward_proj") or "")
    gated = "gated" in act or act in ("silu", "swish", "swiglu") or hasattr(cfg, "num_key_value_heads")
    attn = getattr(cfg, "_attn_implementation", None) or "eager"
    dropout = any((getattr(cfg, k, 0) or 0) > 0 for k in ("hidden_dropout_prob", "resid_pdrop", "dropout_rate",
                                                           "hidden_dropout", "dropout"))
    attention_dropout = any((getattr(cfg, k, 0) or 0) > 0 for k in ("attention_probs_dropout_prob", "attn_pdrop",
                                                                     "attention_dropout", "dropout_rate"))
    return _Dims(int(hidden), int(layers), int(heads), int(vocab), int(intermediate), int(kv_heads * head_dim),
                 gated, attn == "eager", dropout, attention_dropout)


# What a run on a CPU holds besides the model's tensors: oneDNN's scratch and primitive cache, the thread pools,
# autograd's graph, the data loader and the modules a first run imports. Measured with bench/memory_truth.py's
# method: a 1 x 16 step of all-MiniLM-L6-v2 adds 190-220 MiB of peak RSS over what the estimate counts, an evaluation
# batch 190 MiB. On a GPU the CUDA context plays this part, and the fit's headroom covers it.
CPU_RUNTIME_BYTES = 200 * 2**20

# Bytes per element of the LM head's logits held at the peak of a step: the logits at the compute dtype, the float32
# copy the loss makes, log-softmax's saved output and the gradient coming back through them.
_LOGIT_BYTES = {4: 12, 2: 14}
# ... and at the peak of an evaluation batch, without gradients but as many: the logits, the loss's float32 copies and
# log-softmax's output, alive together while the loss is computed. Measured by bench/memory_truth.py: SmolLM2 at
# 32 x 256 under bf16 autocast peaks at about 15 bytes a logit.
_EVAL_LOGIT_BYTES = {4: 12, 2: 14}
# ... and with the chunked loss: one chunk's logits at the compute dtype, their float32 copy and (in backward) the
# float32 softmax that becomes their gradient, while the hidden states' gradient is built
_CHUNK_LOGIT_BYTES = {4: 16, 2: 14}


def _activation_bytes_per_token(d: _Dims, act_bytes: int, seq_len: int, cpu: bool = False) -> float:
    """Bytes autograd keeps per token in one block, counting the tensors each op saves for backward.

    Norm inputs and outputs (2h each; normalisation runs in float32 under autocast), the q/k/v projections
    (h + 2 kv), the attention output (h), the MLP input (h) and hidden (2i, or 4i gated), dropout masks (1 byte),
    and with eager attention the s x s probabilities per head. The Korthikanti et al. (2022) count for GPT blocks is
    the special case i = 4h. On a CPU (``cpu``), SDPA with attention dropout falls back to its math kernel, which
    keeps three float32 s x s tensors per head (the probabilities, the dropout mask, their product) and float32
    copies of q, k and v: measured with ``saved_activation_bytes`` on all-MiniLM-L6-v2 at 32 x 128 under bf16
    autocast (915 MiB kept with attention dropout, 433 without it).
    """
    h, i = d.hidden, d.intermediate
    elements = 4 * h + (h + 2 * d.kv_dim) + h + h + (4 * i if d.gated_mlp else 2 * i)
    total = elements * act_bytes + 2 * h * (4 - act_bytes)  # the norms' float32 outputs
    if d.dropout:
        total += 2 * h  # hidden dropout masks (attention dropout inside a fused SDPA kernel keeps only an RNG seed)
    if d.eager_attention:
        total += d.heads * seq_len * (2 * act_bytes + (1 if d.dropout else 0))
    elif cpu and d.attention_dropout:
        total += d.heads * seq_len * 3 * 4 + (h + 2 * d.kv_dim) * 4
    return total


def _layers_needing_activations(model: nn.Module, index: ParamIndex, total_layers: int) -> int:
    """How many blocks must keep activations for backward: those from the lowest trainable block up.

    Autograd stores activations only where a gradient must flow, i.e. above the first trainable
    parameter. A trainable embedding means every block.
    """
    trainable = {n for n, p in index.params.items() if p.requires_grad}
    if not trainable:
        return 0
    for emb in embedding_module_names(model):
        if any(n in trainable for n in index.under(emb)):
            return total_layers
    lists = block_lists(model)
    if not lists:
        return total_layers
    needed = 0
    for bl in lists:
        lowest = next(
            (i for i in range(bl.count) if any(n in trainable for n in index.under(bl.block(i)))),
            None,
        )
        if lowest is not None:
            needed += bl.count - lowest
    # Encoder-decoder: gradients into the decoder also flow back through all of the encoder
    # when anything in the encoder trains; the per-list count above already covers that case.
    return needed


def saved_activation_bytes(model: nn.Module, forward) -> int:
    """Bytes autograd keeps for backward while ``forward()`` runs, measured, not modelled: every tensor saved for
    backward (``torch.autograd.graph.saved_tensors_hooks``) counted once by storage, parameters left out. It follows
    the freeze state by itself: below the lowest trainable parameter nothing is saved. For models whose sizes no
    transformer config gives (CNNs, timm and torchvision models), at a small batch that is then scaled."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(saved.values())


def estimate_memory(model: nn.Module, batch_size: int = 8, seq_len: int = 128,
                    compute_dtype: str | torch.dtype | None = None, precision: str = "auto",
                    gradient_checkpointing: bool | None = None, quantize: str | None = None,
                    measured=None, eval_batch_size: int | None = None, device: str | None = None,
                    generate_batch: int | None = None, new_tokens: int = 64,
                    chunked_logits: bool = False) -> MemoryEstimate:
    """Estimate the peak memory of one training step with AdamW for the current freeze state.

    Weights: every parameter and buffer at its dtype. Gradients: trainable parameters at their dtype. AdamW: two
    moments per trainable parameter, plus half the gradients' size in temporaries while it steps. Activations (transformers
    configs only): what each block keeps for backward (``_activation_bytes_per_token``) in the blocks that need it,
    the 16-bit copies of their weights that mixed precision makes, and the logits of a language-model head.
    ``precision`` is the training setting (``"auto"`` resolves as training would on this machine); ``compute_dtype``
    overrides it. ``gradient_checkpointing`` and ``quantize`` (``"4bit"``/``"8bit"``) estimate the model as if it
    were so (None: as it is), for the fit advice: block Linear weights then count at their packed size and, being
    frozen, without gradients (an adapter trains instead). ``measured``: for models whose sizes no config gives,
    a callable returning (activation bytes that ``saved_activation_bytes`` measured in float32, at that many
    examples, what one example was) or None; they are scaled to ``batch_size`` and the compute dtype.
    ``eval_batch_size``: also estimate an evaluation batch of that size (no gradients, but a language model's
    vocabulary-wide logits for every token at once), which can need more than training at a small batch.
    ``device``: ``"cpu"`` or ``"cuda"``, the kind of device the run is estimated for (None: this machine's); on a
    CPU the framework's own working memory counts, and SDPA with attention dropout keeps its scores.
    ``generate_batch``: also estimate generating ``new_tokens`` after prompts of ``seq_len`` in batches of that size
    (the KV cache of every layer, one block's tensors for the prompt, the next token's logits).
    ``chunked_logits``: the task's loss computes a language model's logits in chunks (causal LM,
    ``nbtune.core.model.chunked_loss``), so training and evaluation hold one chunk's, where the model allows it.
    """
    if batch_size < 1 or seq_len < 1:
        raise ValueError("batch_size and seq_len must be positive integers")
    index = ParamIndex(model)
    packed = _would_quantize(model, index) if quantize else set()
    bits = {"4bit": 4.13, "8bit": 8.1}.get(quantize or "", 0)  # data + quantization constants, per value
    weights = sum(int(p.numel() * bits / 8) if n in packed else param_bytes(p) for n, p in index.params.items())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    # quantized (or as if): only an adapter trains, whose few parameters are left out; every block needs activations
    grads = 0 if quantize else sum(p.numel() * p.element_size() for p in index.params.values() if p.requires_grad)
    optimizer = 2 * grads  # exp_avg and exp_avg_sq, same dtype as the parameter

    first = next(iter(index.params.values()), None)
    param_dtype = first.dtype if first is not None else torch.float32
    if compute_dtype is None:
        compute_dtype = dtype_for(resolve_precision(precision, model=model), param_dtype)  # where training runs
    dtype_name = str(compute_dtype).replace("torch.", "")
    act_bytes = _DTYPE_BYTES.get(dtype_name, 4)
    mixed = act_bytes < (first.element_size() if first is not None else 4)

    dims = _config_dims(model)
    chunked_logits = chunked_logits and chunkable_parts(model) is not None
    if device is None:  # where training would run here, as precision="auto" resolves it
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cpu = device == "cpu"
    runtime = CPU_RUNTIME_BYTES if cpu else 0
    activations = None
    assumptions = f"AdamW, batch {batch_size} x {seq_len} tokens, {dtype_name} compute"
    trains = bool(quantize) or any(p.requires_grad for p in index.params.values())
    if dims and trains:
        need = dims.layers if quantize else _layers_needing_activations(model, index, dims.layers)
        tokens = batch_size * seq_len
        per_layer = tokens * _activation_bytes_per_token(dims, act_bytes, seq_len, cpu)
        checkpointed = gradient_checkpointing_on(model) if gradient_checkpointing is None else gradient_checkpointing
        if checkpointed:  # each block keeps only its input; one block at a time recomputes the rest in backward
            activations = int(need * tokens * dims.hidden * act_bytes + (per_layer if need else 0))
        else:
            activations = int(need * per_layer)
        if mixed:  # autocast's 16-bit copies of the block weights that backward needs (not of packed 4/8-bit ones)
            block_params = sum(p.numel() for bl in block_lists(model) for i in range(bl.count)
                               for n in index.under(bl.block(i))
                               if (p := index.params[n]).ndim >= 2 and not is_quantized_param(p))
            activations += int(block_params * act_bytes * need / max(dims.layers, 1))
        if _is_lm(model):
            activations += _logit_bytes(tokens, dims.vocab, act_bytes, chunked_logits, _LOGIT_BYTES)
            if mixed:
                activations += dims.vocab * dims.hidden * act_bytes  # the LM head's 16-bit weight
        else:
            activations += tokens * dims.hidden * act_bytes * 2
        activations += grads // 2  # AdamW's foreach temporaries and clipping buffers at the update
        assumptions += (f"; activations kept in {need} of {dims.layers} layers, "
                        + ("gradient checkpointing" if checkpointed else "no gradient checkpointing"))
    elif dims:
        activations = 0
    elif measured is not None and trains and (found := measured()) is not None:
        saved, examples, what = found
        activations = int(saved * batch_size / examples * act_bytes / 4) + grads // 2
        assumptions = (f"AdamW, batch {batch_size} x {what}, {dtype_name} compute; activations measured (the tensors "
                       f"one forward of {examples} keeps for backward, scaled to the batch)")
    else:
        assumptions += "; activations not estimated (no transformer config to read sizes from)"
    evaluation = (weights + runtime + _evaluation_bytes(model, dims, eval_batch_size, seq_len, act_bytes, chunked_logits)
                  if eval_batch_size and dims else None)
    generation = (weights + runtime + _generation_bytes(dims, generate_batch, seq_len, new_tokens, act_bytes)
                  if generate_batch and dims else None)
    if runtime:
        assumptions += f"; {runtime >> 20} MiB for the framework's own working memory on a CPU"
    if chunked_logits and dims:
        assumptions += f"; the loss computes logits {chunk_size(dims.vocab)} tokens at a time"
    estimate = MemoryEstimate(weights, grads, optimizer, activations, batch_size, seq_len, assumptions,
                              eval_batch_size, evaluation, runtime, device, generation, generate_batch, chunked_logits)
    if estimate.peak_phase != "training":
        batch = eval_batch_size if estimate.peak_phase == "evaluation" else generate_batch
        estimate.assumptions += (f"; the run peaks in {estimate.peak_phase} (batch {batch}): lower "
                                 "eval_batch_size to bring it down")
    return estimate


def _generation_bytes(d: _Dims, batch_size: int, seq_len: int, new_tokens: int, act_bytes: int) -> int:
    """What generating holds besides the weights: the KV cache of every layer for prompt and new tokens, one block's
    tensors while the prompt runs, and the next token's logits with their float32 softmax."""
    cache = batch_size * (seq_len + new_tokens) * d.layers * 2 * d.kv_dim * act_bytes
    prompt = batch_size * seq_len * (4 * d.hidden + (3 if d.gated_mlp else 2) * d.intermediate) * act_bytes
    return int(cache + prompt + batch_size * d.vocab * (act_bytes + 8))


def _logit_bytes(tokens: int, vocab: int, act_bytes: int, chunked: bool, per_logit: dict[int, int]) -> int:
    """The LM head's logits held at a phase's peak: every token's, or one chunk's when the loss is chunked."""
    if chunked:
        return min(tokens, chunk_size(vocab)) * vocab * _CHUNK_LOGIT_BYTES.get(act_bytes, 12)
    return tokens * vocab * per_logit.get(act_bytes, 12)


def _evaluation_bytes(model: nn.Module, d: _Dims, batch_size: int, seq_len: int, act_bytes: int,
                      chunked_logits: bool = False) -> int:
    """What one evaluation batch holds besides the weights: one block's live tensors at a time (nothing is kept for
    backward) and, for a language model, the logits of every token with the loss's float32 copies."""
    tokens = batch_size * seq_len
    block = tokens * (4 * d.hidden + (3 if d.gated_mlp else 2) * d.intermediate) * act_bytes
    if d.eager_attention:
        block += batch_size * d.heads * seq_len * seq_len * act_bytes * 2
    head = (_logit_bytes(tokens, d.vocab, act_bytes, chunked_logits, _EVAL_LOGIT_BYTES) if _is_lm(model)
            else tokens * d.hidden * 4)
    return int(block + head)


def _would_quantize(model: nn.Module, index: ParamIndex) -> set[str]:
    """Parameters bitsandbytes would pack: the weights of the Linear layers inside the transformer blocks (the
    embeddings and the output head stay in 16/32 bits, as transformers leaves them)."""
    out = set()
    for bl in block_lists(model):
        for i in range(bl.count):
            block = model.get_submodule(bl.block(i))
            for name, module in block.named_modules():
                if isinstance(module, nn.Linear) and not is_quantized_param(module.weight):
                    out.add(index.canonical(module.weight))
    return out


def _is_lm(model: nn.Module) -> bool:
    """Whether the model ends in a vocabulary-wide output layer (its logits dominate activation memory): what
    transformers exposes as its output embeddings, read from the model rather than guessed from its class name."""
    return embeddings_of(model, "output") is not None
