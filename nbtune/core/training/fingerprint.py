"""What a checkpoint belongs to: model class, every base parameter's name and shape, adapters, task, trainable set.

Resuming onto another model would otherwise fail late (a raw shape error after the trainable set changed) or,
worse, "succeed" on a model that merely shares some names. ``difference`` compares a checkpoint's fingerprint with
the session's before anything is changed and names the first real difference in words.
"""

from __future__ import annotations

from typing import Any

from nbtune.core.common.errors import few
from nbtune.core.model.architecture import canonical_name, is_adapter_param, is_peft_model, unwrap

# adapter config keys that say where or how the config was saved, not what the adapter is
_INCIDENTAL = {"inference_mode", "base_model_name_or_path", "revision", "task_type", "peft_version", "auto_mapping"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def adapter_configs(model) -> dict[str, dict[str, Any]]:
    """Each attached adapter's peft config as plain JSON, without the incidental keys."""
    if not is_peft_model(model):
        return {}
    out = {}
    for name, config in model.peft_config.items():
        settings = config.to_dict() if hasattr(config, "to_dict") else vars(config)
        out[name] = {k: _jsonable(v) for k, v in sorted(settings.items()) if k not in _INCIDENTAL}
    return out


def fingerprint(session, trainable: list[str]) -> dict[str, Any]:
    """The identity of ``session``'s model and run set-up, as JSON."""
    model = session.model
    shapes = dict((n, list(p.shape)) for n, p in model.named_parameters())
    inner = unwrap(model)[0]
    return {
        "model_class": type(inner).__name__,
        "task": session.task,
        "base": [[canonical_name(n), list(p.shape)] for n, p in inner.named_parameters() if not is_adapter_param(n)],
        "adapters": adapter_configs(model),
        "trainable": [[n, shapes.get(n)] for n in trainable],
    }


def difference(saved: dict[str, Any], now: dict[str, Any]) -> str | None:
    """The first way ``now`` differs from ``saved`` that makes resuming wrong, in words; None when they agree."""
    if saved["model_class"] != now["model_class"]:
        return f"it was made for a {saved['model_class']} and this session holds a {now['model_class']}"
    if saved["task"] != now["task"]:
        return f"it was made for task {saved['task']!r} and this session's task is {now['task']!r}"
    if set(saved["adapters"]) != set(now["adapters"]):
        return (f"the checkpoint has adapters {sorted(saved['adapters']) or 'none'} and this session has "
                f"{sorted(now['adapters']) or 'none'}")
    for name, config in saved["adapters"].items():
        other = now["adapters"][name]
        keys = sorted(k for k in set(config) | set(other) if config.get(k) != other.get(k))
        if keys:
            said = ", ".join(f"{k}={config.get(k)!r} there, {other.get(k)!r} here" for k in keys[:3])
            return f"adapter {name!r} is set up differently ({said})"
    there, here = dict((n, s) for n, s in saved["base"]), dict((n, s) for n, s in now["base"])
    reshaped = [f"{n} {there[n]} there, {here[n]} here" for n in there if n in here and there[n] != here[n]]
    if reshaped:
        return f"parameter shapes differ: {few(reshaped, 3)}"
    only_there, only_here = [n for n in there if n not in here], [n for n in here if n not in there]
    if only_there or only_here:
        parts = ([f"only in the checkpoint's model: {few(only_there, 3)}"] if only_there else []) + \
                ([f"only in this session's model: {few(only_here, 3)}"] if only_here else [])
        return "the models have different layers (" + "; ".join(parts) + ")"
    # adapter parameters match once the adapter configs do; everything else must be a base parameter
    missing = [n for n, _ in saved["trainable"] if canonical_name(n) not in here and not is_adapter_param(n)]
    if missing:
        return f"the checkpoint trains parameters this model lacks: {few(missing, 3)}"
    return None
