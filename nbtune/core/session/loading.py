"""``nbtune.load``: a hub id, a local folder, a GGUF file or any ``nn.Module`` -> ``Session``.

Loading is done by transformers' ``AutoModelFor...`` classes; nbtune picks the class for the task,
checks the input first so that every failure is one clear message, and records where the model came
from so that a session can be saved, exported and reloaded.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nbtune.core.common.errors import ModelLoadError, few
from nbtune.core.common.hub import hub_offline_reason
from nbtune.core.common.plugins import import_plugins
from nbtune.core.common.quiet import quietly
from nbtune.core.common.seeding import DEFAULT_SEED, derived_seed, seeded
from nbtune.core.data.processor import text_view
from nbtune.core.model.architecture import unwrap
from nbtune.core.model.quantize import (
    check_quantize,
    default_dtype,
    load_device,
    prepare_for_kbit_training,
    set_gradient_checkpointing,
)
from nbtune.core.model.quantize import describe as describe_fit
from nbtune.core.model.quantize import load_kwargs as quantize_kwargs
from nbtune.core.model.source import ModelSource
from nbtune.core.objectives import task_and_objective
from nbtune.core.session import persist
from nbtune.core.session.session import Session
from nbtune.core.session.vision_models import TIMM_PREFIX, TORCHVISION_PREFIX, timm_hub_id, vision_model
from nbtune.core.tasks import (
    auto_class,
    check_labels,
    get_task,
    label_settings,
    resolve_task,
    task_for_architecture,
    task_from_class_name,
)
from nbtune.core.tasks.base import GenerativeTask

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def _drop_spent_gguf_quantizer(model, notes: list[str]) -> None:
    """A GGUF file loaded with its weights de-quantized (every parameter a plain float tensor, as on a CPU without
    GGUF kernels) still carries transformers' GGUF quantizer, which makes ``save_pretrained`` refuse ("quantized
    with gguf and is not serializable") even after a merge. Such a model is an ordinary float model: the
    quantizer's own ``remove_quantization_config`` says so, and it then saves as safetensors."""
    quantizer = getattr(model, "hf_quantizer", None)
    method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
    if quantizer is None or getattr(method, "value", method) != "gguf":
        return
    if all(p.dtype.is_floating_point for p in model.parameters()):
        quantizer.remove_quantization_config(model)
        notes.append("GGUF weights de-quantized on load: the model trains, merges and saves as an ordinary "
                     "float model (safetensors)")


def _dtype(value) -> torch.dtype | str:
    if value is None or isinstance(value, torch.dtype) or value == "auto":
        return value
    try:
        return _DTYPES[str(value).lower()]
    except KeyError:
        raise ModelLoadError(f"Unknown dtype {value!r}; use one of {', '.join(_DTYPES)} or 'auto'.") from None


def _locate(source: str | os.PathLike, gguf_file: str | None) -> tuple[str, str, str | None]:
    """(kind, location, gguf_file) for a string source, checking files before transformers does."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return "gguf", str(path.parent), path.name
        raise ModelLoadError(
            f"{text} is a file, not a model folder. Pass the folder that holds config.json, or a .gguf file."
        )
    if path.is_dir():
        if gguf_file:
            if not (path / gguf_file).is_file():
                found = sorted(p.name for p in path.glob("*.gguf"))
                raise ModelLoadError(f"No GGUF file {gguf_file!r} in {text}. GGUF files there: {found or 'none'}.")
            return "gguf", str(path), gguf_file
        if not (path / "config.json").exists():
            ggufs = sorted(p.name for p in path.glob("*.gguf"))
            hint = (f" It holds GGUF files ({', '.join(ggufs)}): pass gguf_file='{ggufs[0]}'." if ggufs
                    else " Save a model there with model.save_pretrained(folder), or pass its hub id.")
            raise ModelLoadError(f"{text} has no config.json, so it is not a transformers model folder.{hint}")
        return "folder", str(path), None
    looks_like_path = text.startswith((".", "/", "~")) or os.sep in text.strip("/").split("/", 1)[-1] \
        or text.count("/") > 1 or text.endswith(".gguf")
    if looks_like_path or not _HUB_ID.match(text):
        raise ModelLoadError(
            f"No such file or folder: {text}. Pass an existing model folder, a .gguf file, or a hub id such as "
            "'bert-base-uncased' or 'org/model'."
        )
    return "hub", text, gguf_file


def _hub_error(source: str, exc: Exception, allow_pickle: bool = True) -> ModelLoadError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    offline = hub_offline_reason()
    if offline is not None:
        reason = f"offline: {offline}; not in the local cache either"
    pickle_only = "" if allow_pickle or "safetensors" not in str(exc) else (
        " The repository may hold its weights only as a pickle file (pytorch_model.bin): if you trust its "
        "author, pass allow_pickle=True.")
    return ModelLoadError(
        f"Could not load {source!r} from the Hugging Face Hub ({reason}).{pickle_only} If you are offline or behind "
        f"a firewall, download it where you have network (`hf download {source} --local-dir ./model`, or "
        "`model.save_pretrained('./model')`), copy the folder here and call nbtune.load('./model', ...). "
        "If the id is wrong, check its spelling on the hub."
    )


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_weight_files(kind: str, location: str, allow_pickle: bool) -> bool | None:
    """``use_safetensors`` for ``from_pretrained``: safetensors whenever they exist; a folder with pickle weights
    only is refused unless ``allow_pickle`` (unpickling a file can run any code hidden in it)."""
    if kind == "hub":
        return None if allow_pickle else True
    if kind != "folder":
        return None
    folder = Path(location)
    if any(folder.glob("*.safetensors")):
        return True
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if pickles and not allow_pickle:
        raise ModelLoadError(
            f"{folder} holds its weights only as a pickle file ({', '.join(pickles[:3])}). Loading a pickle can run "
            "code hidden in the file, so nbtune does not do it unasked. If you trust where the folder came from, "
            "pass allow_pickle=True; better, convert it once to safetensors (load it with allow_pickle=True and "
            "s.save(...), or model.save_pretrained(folder, safe_serialization=True))."
        )
    return False if pickles else None


def _load_config(kind: str, location: str, gguf_file: str | None, trust_remote_code: bool, revision: str | None,
                 local_only: bool = False):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(location, gguf_file=gguf_file, trust_remote_code=trust_remote_code,
                                          revision=revision, local_files_only=local_only)
    except OSError as exc:
        if kind == "hub":
            raise _hub_error(location, exc) from None
        raise ModelLoadError(f"Could not read the model config in {location}: {exc}") from None
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ModelLoadError(
                f"{location} needs custom code from its repository to load. If you trust its author, pass "
                "trust_remote_code=True (nbtune leaves it off by default)."
            ) from None
        raise ModelLoadError(f"Could not read the model config in {location}: {exc}") from None
    except Exception as exc:  # a damaged config.json, a model type this transformers does not know
        raise ModelLoadError(
            f"Could not read the model config in {location} ({type(exc).__name__}: {exc}). Check its config.json "
            "(valid JSON, a model_type this transformers version knows; upgrading transformers may help)."
        ) from None


def _load_processor(processor, location: str | None, gguf_file: str | None, trust_remote_code: bool,
                    revision: str | None, notes: list[str], local_only: bool = False):
    """The model's processor, found as ``transformers.AutoProcessor`` finds it (a processor config, then an image
    processor, a feature extractor or a video processor, then a tokenizer); a GGUF file holds a tokenizer only."""
    if processor is False or (processor is None and location is None):
        return None
    if processor is not None and not isinstance(processor, (str, os.PathLike)):
        return processor  # a ready object: tokenizer, image processor, feature extractor, processor or transform
    from transformers import AutoProcessor, AutoTokenizer

    where = str(processor) if processor is not None else location
    try:
        if gguf_file and processor is None:
            return AutoTokenizer.from_pretrained(where, gguf_file=gguf_file, trust_remote_code=trust_remote_code,
                                                 revision=revision, local_files_only=local_only)
        return AutoProcessor.from_pretrained(where, trust_remote_code=trust_remote_code, revision=revision,
                                             local_files_only=local_only)
    except (OSError, ValueError, TypeError) as exc:
        if processor is not None:
            raise ModelLoadError(f"Could not load a processor (tokenizer, image processor or feature extractor) from "
                                 f"{where}: {exc}") from None
        notes.append(f"no processor found with the model ({type(exc).__name__}); pass processor=... (a tokenizer, "
                     "image processor or feature extractor) to train on raw data")
        return None


def _one_processor(processor, tokenizer):
    """``processor=`` and its text spelling ``tokenizer=`` fill the same slot: one of them, or an error."""
    if tokenizer is not None and processor is not None:
        raise ModelLoadError("processor= and tokenizer= fill the same slot (a tokenizer is a text processor); pass "
                             "one of them.")
    return processor if tokenizer is None else tokenizer


def _ensure_pad_token(model: nn.Module, processor, notes: list[str]) -> None:
    """Decoder-only tokenizers often lack a pad token; batching and classification need one."""
    tokenizer = text_view(processor)
    if tokenizer is None or getattr(tokenizer, "pad_token", "x") is not None:
        return
    if getattr(tokenizer, "eos_token", None) is None:
        return
    tokenizer.pad_token = tokenizer.eos_token
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = tokenizer.pad_token_id
    notes.append(f"tokenizer had no pad token; using its end-of-sequence token {tokenizer.eos_token!r}")


@quietly
def load(
    source: str | os.PathLike | nn.Module,
    task: str | None = None,
    num_labels: int | None = None,
    *,
    labels: list[str] | None = None,
    gguf_file: str | None = None,
    weights: bool = True,
    processor: Any = None,
    tokenizer: Any = None,
    trust_remote_code: bool = False,
    dtype: str | torch.dtype | None = None,
    quantize: str | None = None,
    gradient_checkpointing: bool = False,
    revision: str | None = None,
    adapter: str | os.PathLike | None = None,
    seed: int | None = None,
    allow_pickle: bool = False,
    **model_kwargs: Any,
):
    """Load a pretrained model into a new :class:`~nbtune.Session`.

    Args:
        source: a hub id (``"bert-base-uncased"``), a local folder with ``config.json``, a ``.gguf`` file,
            or any ``torch.nn.Module`` (transformers or hand-written).
        task: ``text-classification``, ``token-classification``, ``question-answering``, ``causal-lm``,
            ``masked-lm`` or ``seq2seq`` (aliases such as ``ner`` accepted). ``None`` infers it from the
            config's architecture where it can.
        num_labels: head size for classification; ``1`` means regression.
        labels: label names (sets ``num_labels`` and ``id2label``).
        gguf_file: GGUF file name inside ``source`` (or pass the file path as ``source``).
        weights: ``False`` builds the model from its config on the meta device (no memory, no download of
            weights): ``layers()`` and ``summary()`` work, training does not.
        processor: what turns raw data into model inputs: a tokenizer, an image processor, a feature extractor or a
            multimodal processor (found as ``transformers.AutoProcessor`` finds it), or for a plain ``nn.Module`` any
            callable transform. ``None`` loads the model's own, ``False`` none, a path loads from there, an object
            is used. Saved and reloaded with the session; ``s.tokenizer`` is its text part.
        tokenizer: the same slot under its text name (``tokenizer=False``, ``tokenizer='path'``); give one of the two.
        trust_remote_code: run code shipped with a hub model; off unless you ask.
        dtype: weights dtype. ``None`` (default): a causal or seq2seq language model on a GPU keeps the checkpoint's
            dtype (``"auto"``: 16-bit for most, not float32 at twice the memory); on a CPU, and for encoder models,
            float32 (mixed precision comes from the trainer). ``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"``
            choose.
        quantize: ``"4bit"`` (NF4, double quantization, compute dtype for the device: QLoRA) or ``"8bit"``
            (LLM.int8()) through bitsandbytes, on the GPU if there is one, else the CPU. The base is then frozen and
            prepared for k-bit training (peft): attach an adapter to train.
        gradient_checkpointing: recompute activations in backward (non-reentrant; works with frozen embeddings
            and adapters): much less activation memory for about a third more compute per step. Also
            ``s.gradient_checkpointing = True`` later.
        revision: hub branch, tag or commit.
        adapter: a folder written by ``Session.save``, restored onto this base model (needed when the saved
            session's base was a Python ``nn.Module``; otherwise ``nbtune.load(folder)`` finds the base itself).
        seed: the session's one seed (default 42, or the seed a saved folder was saved with): a new head is
            initialised from it here, later heads and adapters from
            seeds derived from it, and ``train`` uses it unless given another. The same script gives the same
            weights in any process.
        allow_pickle: load weights stored only as pickle files (``pytorch_model.bin``, ``.pt``). Off by default:
            unpickling can run code hidden in the file; safetensors files are always preferred.
        **model_kwargs: passed to ``from_pretrained``.
    """
    processor = _one_processor(processor, tokenizer)
    objective = task_and_objective(task)[1] if task is not None else None  # task="orpo": preference with ORPO
    session = _load(source, task, num_labels, labels=labels, gguf_file=gguf_file, weights=weights, processor=processor,
                    trust_remote_code=trust_remote_code, dtype=dtype, quantize=quantize,
                    gradient_checkpointing=gradient_checkpointing, revision=revision, adapter=adapter, seed=seed,
                    allow_pickle=allow_pickle, **model_kwargs)
    if objective is not None:
        session.objective = objective
    return session


def _load(source, task, num_labels, *, labels, gguf_file, weights, processor, trust_remote_code, dtype, quantize,
          gradient_checkpointing, revision, adapter, seed, allow_pickle, **model_kwargs):
    """``load`` once its arguments are checked: onto a base with a saved adapter folder, a saved folder, or a model."""
    if adapter is not None:
        meta = persist.read_meta(adapter)
        if meta is None:
            raise ModelLoadError(f"{adapter} is not a folder written by Session.save (no {persist.META_FILE}).")
        if labels is None and num_labels is None and meta.get("id2label"):
            labels = list(meta["id2label"].values())  # the saved head's classes: its weights then fit
        session = load(source, task or meta.get("task"), num_labels, labels=labels, gguf_file=gguf_file,
                       weights=weights, processor=processor, trust_remote_code=trust_remote_code, dtype=dtype,
                       quantize=quantize, gradient_checkpointing=gradient_checkpointing, revision=revision, seed=seed,
                       allow_pickle=allow_pickle, **model_kwargs)
        persist.restore(session, adapter, meta)
        if processor is None and persist.saved_processor(adapter, meta):  # the saved one, unless one was given
            session.processor = _load_processor(str(adapter), None, None, trust_remote_code, revision, session.notes)
        return session
    if isinstance(source, (str, os.PathLike)) and not isinstance(source, nn.Module):
        persist.recover_interrupted_save(source)  # a save killed mid-swap left the previous one beside the folder
        meta = persist.read_meta(source) if Path(str(source)).expanduser().is_dir() else None
        if meta is not None:
            session = _load_saved(source, meta, dtype=dtype, quantize=quantize, processor=processor,
                                  gradient_checkpointing=gradient_checkpointing, seed=seed, allow_pickle=allow_pickle,
                                  **model_kwargs)
            if task is not None and task_and_objective(task)[0] != session.task:  # a saved chat model, next DPO
                session.switch_task(task, num_labels, labels)
            elif labels is not None or num_labels is not None:
                _relabel(session, num_labels, labels)
            return session
    return _load_model(source, task, num_labels, labels=labels, gguf_file=gguf_file, weights=weights,
                       processor=processor, trust_remote_code=trust_remote_code, dtype=dtype, quantize=quantize,
                       gradient_checkpointing=gradient_checkpointing, revision=revision,
                       seed=DEFAULT_SEED if seed is None else seed, allow_pickle=allow_pickle, **model_kwargs)


def _relabel(session, num_labels, labels) -> None:
    """A saved classifier loaded for other classes (a model pretrained on some, fine-tuned on others): a fresh head
    of the new width and names; the same labels change nothing."""
    num_labels, labels = check_labels(num_labels, labels, ModelLoadError)
    config = getattr(unwrap(session.model)[0], "config", None)
    current = [config.id2label[i] for i in range(config.num_labels)] if config is not None else None
    if labels is not None and labels == current or labels is None and config is not None and \
            num_labels == config.num_labels:
        return
    session.reset_head(num_labels=num_labels, labels=labels)
    session.notes.append(f"a fresh head for {few(labels, 6) if labels else num_labels} (it had "
                         f"{few(current, 6) if current else 'other'} labels); train it before use")


def _load_saved(folder, meta: dict[str, Any], dtype, quantize=None, seed: int | None = None, processor=None,
                **model_kwargs):
    """Reload a folder written by ``Session.save``: base model, then adapters and trained weights. An adapter
    trained on a quantized base goes back onto a base quantized the same way unless ``quantize`` says otherwise.
    The processor saved in the folder comes back unless ``processor`` gives one (a transform that is Python code
    is not saved: the folder's metadata says so)."""
    import_plugins(meta.get("plugins"), ModelLoadError, str(folder))  # before its task or model class is read
    seed = meta.get("seed", DEFAULT_SEED) if seed is None else seed
    base = meta["base"]
    if quantize is None and meta["peft"]:
        quantize = base.get("quantize")
    model_kwargs["quantize"] = quantize
    labels = list(meta["id2label"].values()) if meta.get("id2label") else None
    if processor is None:
        processor = str(folder) if persist.saved_processor(folder, meta) else False
    if not meta["peft"] and meta.get("has_config"):
        session = _load_model(folder, meta["task"], labels=labels, processor=processor, dtype=dtype, seed=seed,
                              **model_kwargs)
    elif base["kind"] == "module":
        raise ModelLoadError(
            f"{folder} was saved from a Python nn.Module, which cannot be rebuilt from a file. Build the module again "
            f"and pass it: nbtune.load(MyModel(), adapter={str(folder)!r})."
        )
    else:
        location = base["location"]
        if base["kind"] != "hub" and not Path(location).exists():
            raise ModelLoadError(
                f"{folder} adapts the base model at {location}, which no longer exists. Load the base yourself and "
                f"pass the folder: nbtune.load('path/to/base', task={meta['task']!r}, adapter={str(folder)!r})."
            )
        session = _load_model(location, meta["task"], labels=labels, gguf_file=base.get("gguf_file"),
                              processor=processor, trust_remote_code=base.get("trust_remote_code", False),
                              revision=base.get("revision"), dtype=dtype, seed=seed, **model_kwargs)
    persist.restore(session, folder, meta)
    # folders saved while DPO and ORPO were tasks of their own name them as the task
    session.objective = (meta.get("objective") or task_and_objective(meta["task"])[1]) if meta.get("task") else None
    if processor is False and meta.get("processor_not_saved"):
        session.notes.append(f"the session was saved with a processor that is Python code "
                             f"({meta['processor_not_saved']}), which was not written; pass it: "
                             f"nbtune.load({str(folder)!r}, processor=...)")
    session.eval_mode()  # as a fresh load is: peft leaves rebuilt adapters in training mode (dropout on)
    return session


def _load_model(
    source, task=None, num_labels=None, *, labels=None, gguf_file=None, weights=True, processor=None,
    trust_remote_code=False, dtype=None, quantize=None, gradient_checkpointing=False, revision=None,
    seed=DEFAULT_SEED, allow_pickle=False, **model_kwargs,
):
    if isinstance(source, str) and source.startswith(TIMM_PREFIX):
        source = timm_hub_id(source)  # timm's weights are on the hub, in a folder transformers' timm wrapper loads
    vision = vision_model(source, processor, weights) if isinstance(source, nn.Module) or (
        isinstance(source, str) and source.startswith(TORCHVISION_PREFIX)) else None
    if vision is not None:
        source, processor, vision_notes = vision
        task = task or "image-classification"
    if isinstance(source, nn.Module):
        config = getattr(source, "config", None)
        inferred = (task_for_architecture(config, type(source).__name__) if config is not None
                    else task_from_class_name(type(source).__name__))
        spec = get_task(task) if task else (get_task(inferred) if inferred else None)
        if quantize:
            raise ModelLoadError("quantize works while transformers loads weights from a folder, file or hub id; "
                                 "an nn.Module is already in memory. Quantize it with bitsandbytes yourself, or save "
                                 "it with save_pretrained and load that folder with quantize=...")
        notes: list[str] = []
        if gradient_checkpointing:
            set_gradient_checkpointing(source, True)
            notes.extend(describe_fit(None, load_device(), True))
        processor = _load_processor(processor, None, None, trust_remote_code, revision, notes)
        _ensure_pad_token(source, processor, notes)
        session = Session(source, processor, task=spec.name if spec else None, source=ModelSource("module"),
                          notes=notes + (vision_notes if vision is not None else []), seed=seed)
        if (labels is not None or num_labels is not None) and spec is not None and spec.labelled:
            _relabel(session, num_labels, labels)  # the classes of the data, not the ones it was trained on
        return session

    if not isinstance(source, (str, os.PathLike)):
        raise ModelLoadError(
            f"Cannot load a {type(source).__name__}: pass a hub id, a folder path, a .gguf file or an nn.Module."
        )
    kind, location, gguf_file = _locate(source, gguf_file)
    quantize = check_quantize(quantize)
    torch_dtype = _dtype(dtype)
    if quantize and kind == "gguf":
        raise ModelLoadError(
            "transformers de-quantizes GGUF files as it loads them and cannot quantize them again with bitsandbytes. "
            "Load the GGUF once, save it as a folder (s = nbtune.load('model.gguf'); s.save('model-folder')), then "
            "nbtune.load('model-folder', quantize='4bit').")
    if quantize and not weights:
        raise ModelLoadError("quantize needs weights to quantize; weights=False builds an empty (meta) model. "
                             "Drop one of them: summary() on a meta model already estimates a 4-bit load.")
    # offline with no switch set: cached files only, at once (the libraries would retry for about 25 s a file)
    offline = hub_offline_reason() if kind == "hub" else None
    config = _load_config(kind, location, gguf_file, trust_remote_code, revision, local_only=offline is not None)
    spec = resolve_task(task, config, location, kind)
    if torch_dtype is None:
        torch_dtype = default_dtype(issubclass(spec, GenerativeTask), quantize)
    for key, value in label_settings(spec, num_labels, labels).items():
        setattr(config, key, value)
    cls = auto_class(spec)
    notes = []
    if not weights:
        with torch.device("meta"):
            model = cls.from_config(config, trust_remote_code=trust_remote_code)
        notes.append("built from the config on the meta device (weights=False): inspect only, no training")
    else:
        kwargs = dict(config=config, gguf_file=gguf_file, trust_remote_code=trust_remote_code, revision=revision,
                      output_loading_info=True, **quantize_kwargs(quantize),
                      **{"local_files_only": offline is not None, **model_kwargs})
        if torch_dtype is not None:
            kwargs["dtype"] = torch_dtype
        if num_labels is not None or labels is not None:
            kwargs["ignore_mismatched_sizes"] = True  # a different head size means a fresh head
        kwargs["use_safetensors"] = check_weight_files(kind, location, allow_pickle)
        try:
            with seeded(derived_seed(seed, 1)):  # a new head starts from the session's seed
                model, info = cls.from_pretrained(location, **kwargs)
        except OSError as exc:
            if kind == "hub":
                raise _hub_error(location, exc, allow_pickle) from None
            raise ModelLoadError(f"Could not load weights from {location}: {exc}") from None
        except pickle.UnpicklingError:
            raise ModelLoadError(
                f"The pickle weights in {location} hold more than plain tensors (objects, or code that would run on "
                "loading), so nbtune will not load them even with allow_pickle=True. Get the model as safetensors "
                "from its source."
            ) from None
        except Exception as exc:  # a corrupt file, shapes that do not fit the config
            raise ModelLoadError(
                f"Could not load the weights in {location}: {type(exc).__name__}: {exc}. Check that the folder "
                "holds a complete model (re-download or re-save it); a pickle file that fails to load may also be "
                "unsafe, so prefer a safetensors copy."
            ) from None
        if kind == "gguf":
            _drop_spent_gguf_quantizer(model, notes)
        if quantize:
            model = prepare_for_kbit_training(model)
        if gradient_checkpointing:
            set_gradient_checkpointing(model, True)
        if quantize or gradient_checkpointing:
            notes.extend(describe_fit(quantize, load_device(), gradient_checkpointing))
        fresh = sorted(set(info.get("missing_keys") or []) | {k[0] if isinstance(k, tuple) else k
                                                             for k in info.get("mismatched_keys") or []})
        if fresh:
            notes.append(f"newly initialised (not in the checkpoint): {few(fresh, 4)}; train them before use")
    processor = _load_processor(processor, location, gguf_file, trust_remote_code, revision, notes,
                                local_only=offline is not None)
    _ensure_pad_token(model, processor, notes)
    src = ModelSource(kind, location, gguf_file, weights, trust_remote_code, revision, quantize)
    return Session(model, processor, task=spec.name, source=src, notes=notes, seed=seed)
