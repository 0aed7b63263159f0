"""timm and torchvision classifiers as image-classification sessions.

timm: through transformers' own wrapper (``TimmWrapperForImageClassification``, with a ``TimmWrapperImageProcessor``
built from the model's pretrained config, i.e. timm's data config). A timm model is then a transformers model: its
labels live in its config, it saves and reloads as a folder (timm rebuilds the architecture by name), LoRA attaches
through peft. A hub id such as ``"timm/resnet18.a1_in1k"`` already loads that way; ``"timm:resnet18"`` names a model
as timm does (its default pretrained tag); a model object from ``timm.create_model`` is wrapped as it is.

torchvision: the model stays the plain module it is (``forward(tensor) -> logits``). It is given a transformers
``PretrainedConfig`` holding what it lacks, its label names and input size, so that labels, predictions and saving
read them as they do for every classifier. Its processor is its weights' own transforms when it is loaded by name
(``"torchvision:resnet18"``), else the ImageNet evaluation transform (resize 256, centre crop 224, ImageNet mean and
std) that torchvision's classification weights use, unless ``processor=`` gives another.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nbtune.core.common.errors import ModelLoadError
from nbtune.core.model.architecture import is_linear_like, task_head_names

TIMM_PREFIX, TORCHVISION_PREFIX = "timm:", "torchvision:"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def is_timm_model(model: Any) -> bool:
    return isinstance(model, nn.Module) and type(model).__module__.startswith("timm.") and hasattr(
        model, "pretrained_cfg")


def is_torchvision_classifier(model: Any) -> bool:
    name = type(model).__module__
    return isinstance(model, nn.Module) and name.startswith("torchvision.models") and not any(
        part in name for part in (".detection", ".segmentation", ".video", ".optical_flow", ".quantization"))


def _require(package: str, what: str):
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ModelLoadError(f"{what} needs {package} ({exc}); pip install {package} (or nbtune[vision]).") from None


def timm_hub_id(source: str) -> str:
    """``"timm:NAME"`` (a timm model name, with or without its pretrained tag) as the hub id of its weights."""
    timm = _require("timm", f"{source!r}")
    name = source[len(TIMM_PREFIX):].strip()
    try:
        hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id
    except (RuntimeError, AttributeError, KeyError):
        hub_id = None
    if not hub_id:
        close = timm.list_pretrained(f"*{name.split('.')[0]}*")[:5]
        raise ModelLoadError(f"timm knows no pretrained weights called {name!r}"
                             f"{'; close: ' + ', '.join(close) if close else ''}. timm.list_pretrained('*resnet*') "
                             "lists them.")
    return hub_id


def wrap_timm(model: nn.Module):
    """(transformers' wrapper around the timm model object, its image processor from timm's data config)."""
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification, TimmWrapperImageProcessor

    pretrained = dict(model.pretrained_cfg)
    if not getattr(model, "num_classes", 0):
        raise ModelLoadError("This timm model has no classifier (num_classes=0, a feature extractor); create it with "
                             "one: timm.create_model(name, pretrained=True, num_classes=len(labels)).")
    config = TimmWrapperConfig(architecture=pretrained["architecture"], pretrained_cfg=pretrained,
                               num_labels=model.num_classes)
    with torch.device("meta"):  # the wrapper's own timm model is never used: the given one replaces it
        wrapper = TimmWrapperForImageClassification(config)
    wrapper.timm_model = model
    wrapper.train(model.training)
    return wrapper, TimmWrapperImageProcessor(pretrained_cfg=pretrained)


def torchvision_by_name(source: str, weights: bool):
    """(model, its weights' transforms or None, category names or None) for ``"torchvision:NAME"``."""
    models = _require("torchvision.models", f"{source!r}")
    name = source[len(TORCHVISION_PREFIX):].strip()
    if name not in models.list_models(module=models):
        from nbtune.core.common.errors import close_matches

        close = close_matches(name, models.list_models(module=models))
        raise ModelLoadError(f"torchvision has no classification model {name!r}"
                             f"{'; did you mean ' + ', '.join(close) + '?' if close else ''} "
                             "(torchvision.models.list_models(module=torchvision.models) lists them).")
    chosen = models.get_model_weights(name).DEFAULT if weights else None
    try:
        if weights:
            model = models.get_model(name, weights=chosen)
        else:
            with torch.device("meta"):
                model = models.get_model(name, weights=None)
    except (OSError, RuntimeError) as exc:  # no network: the download of the weights fails
        raise ModelLoadError(f"Could not get torchvision's {chosen} weights for {name} ({exc}). Offline, download "
                             "them where you have network (they go to torch.hub's cache, "
                             f"{torch.hub.get_dir()}) and copy that folder here.") from None
    categories = list(chosen.meta.get("categories") or []) or None if chosen is not None else None
    return model, (chosen.transforms() if chosen is not None else None), categories


def imagenet_transform():
    """The evaluation transform of torchvision's ImageNet classification weights, built from its public v2 API."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224), v2.ToImage(),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def head_width(model: nn.Module) -> int | None:
    """Outputs of the model's classifier (the last Linear of its head), or None where no head is found."""
    linears = [m for h in task_head_names(model) for m in model.get_submodule(h).modules() if is_linear_like(m)]
    return linears[-1].out_features if linears and isinstance(linears[-1], nn.Linear) else None


def describe_torchvision(model: nn.Module, categories: list[str] | None, side: int = 224) -> None:
    """Give a torchvision classifier a config holding its label names and input size (what transformers models
    carry and torchvision's lack); a model that has one already keeps it."""
    from transformers import PretrainedConfig

    if isinstance(getattr(model, "config", None), PretrainedConfig):
        return
    width = head_width(model)
    if width is None:
        raise ModelLoadError(f"Found no classifier (a Linear called fc, classifier or head) in {type(model).__name__};"
                             " nbtune fine-tunes torchvision's classification models.")
    names = categories if categories and len(categories) == width else [f"LABEL_{i}" for i in range(width)]
    model.config = PretrainedConfig(id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
                                    image_size=side, num_channels=3, architectures=[type(model).__name__])


def vision_model(source: Any, processor: Any, weights: bool = True):
    """(model, processor, notes) when ``source`` is a timm or torchvision classifier (an object, ``"timm:NAME"`` is
    resolved by the caller to a hub id first), else None. ``processor`` is the one given (None: the model's)."""
    notes: list[str] = []
    categories = None
    if isinstance(source, str) and source.startswith(TORCHVISION_PREFIX):
        source, own, categories = torchvision_by_name(source, weights)
        processor = own if processor is None else processor
    if is_timm_model(source):
        wrapper, own = wrap_timm(source)
        notes.append("a timm model, run through transformers' TimmWrapperForImageClassification (its data config "
                     "decides resize, crop, mean and std)")
        return wrapper, own if processor is None else processor, notes
    if is_torchvision_classifier(source):
        if processor is None:
            processor = imagenet_transform()
            notes.append("no processor given: torchvision's ImageNet evaluation transform (resize 256, crop 224, "
                         "ImageNet mean/std); pass processor=weights.transforms() for weights that differ")
        describe_torchvision(source, categories)
        return source, processor, notes
    return None
