"""Back to GGUF: a fine-tuned model that came from a GGUF file, written as a GGUF file again (``Session.export_gguf``).

The source file gives everything but the weights: its metadata (architecture, sizes, rope settings, chat template)
and its tokenizer are copied field by field with the ``gguf`` package's reader and writer; the tensors are the
session's merged weights, named as the source names them (``gguf``'s own HF-to-GGUF name map) and written as
f32, f16 or q8_0 (``gguf.quants``). Llama-architecture query and key weights are stored by llama.cpp with their
rotary halves interleaved; transformers undoes that on load, so it is redone here, exactly as llama.cpp's converter
does. Models from other sources have no GGUF metadata to start from: llama.cpp's converter (convert_hf_to_gguf.py)
writes it from a saved folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nbtune.core.common.errors import NbtuneError

OUT_TYPES = ("f32", "f16", "q8_0")
_SKIP_FIELDS = ("GGUF.", "general.architecture", "general.file_type", "general.quantization_version")


def _permute_like_llama_cpp(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` (convert_hf_to_gguf.py): the inverse of transformers' reverse permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _check(session, out_type: str) -> Path:
    from nbtune.core.adapters import is_peft_model

    if session.source.kind != "gguf":
        raise NbtuneError(
            "export_gguf() writes models that were loaded from a GGUF file, reusing that file's metadata and "
            "tokenizer. For other models, save the merged weights (s.merge(); s.save(folder)) and convert the folder "
            "with llama.cpp's converter: python convert_hf_to_gguf.py folder --outtype f16.")
    if is_peft_model(session.model):
        raise NbtuneError("The session still has adapters: merge them into the weights first (s.merge()), then "
                          "export_gguf(). save() keeps the adapters separately if you want them too.")
    if out_type not in OUT_TYPES:
        raise NbtuneError(f"out_type must be one of {OUT_TYPES}; got {out_type!r}.")
    source = Path(session.source.location) / session.source.gguf_file
    if not source.is_file():
        raise NbtuneError(f"The source GGUF file {source} is gone; its metadata and tokenizer are needed to write a "
                          "new one. Put it back (or save the session and convert with llama.cpp).")
    return source


def export_gguf(session, path: str | os.PathLike, out_type: str = "f16") -> Path:
    """Write the session's (merged) model to ``path`` as GGUF with the source file's metadata and tokenizer."""
    import gguf

    source = _check(session, out_type)
    path = Path(path).expanduser()
    reader = gguf.GGUFReader(source)
    arch = reader.fields["general.architecture"].contents()
    arch_id = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    config = session.model.config
    n_blocks = config.num_hidden_layers
    names = gguf.get_tensor_name_map(arch_id, n_blocks)
    state = {k: v.detach().float().cpu().numpy() for k, v in session.model.state_dict().items()}
    by_gguf_name = {}
    for hf_name, value in state.items():
        mapped = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if mapped is not None:
            by_gguf_name[mapped] = value
    missing = [t.name for t in reader.tensors if t.name not in by_gguf_name]
    if missing:
        raise NbtuneError(f"The model has no weights for {missing[:3]} of the source file ({arch} architecture): "
                          "this architecture's names are not mapped here; convert a saved folder with llama.cpp.")

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch)
    for name, field in reader.fields.items():
        if name.startswith(_SKIP_FIELDS):
            continue
        sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), field.types[0], sub_type=sub_type)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[out_type]
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", None)
    for tensor in reader.tensors:  # the source's tensors, in its order (a tied output head is not among them)
        data = by_gguf_name[tensor.name]
        if arch == "llama" and ".attn_q." in tensor.name:
            data = _permute_like_llama_cpp(data, heads, heads)
        elif arch == "llama" and ".attn_k." in tensor.name:
            data = _permute_like_llama_cpp(data, heads, kv_heads)
        if data.ndim == 1 or out_type == "f32":  # norms and biases stay f32, as llama.cpp writes them
            writer.add_tensor(tensor.name, data.astype(np.float32))
        elif out_type == "f16":
            writer.add_tensor(tensor.name, data.astype(np.float16))
        else:
            qtype = gguf.GGMLQuantizationType.Q8_0
            # the quantized bytes; the writer reads the logical shape back from their shape and the type
            writer.add_tensor(tensor.name, gguf.quants.quantize(data.astype(np.float32), qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(partial, path)  # a kill mid-write leaves the .partial file, never a truncated model at path
    return path
