"""Pure parsing for ``%nbtune`` lines: words, ``key=value`` settings and ``$name`` references.

No IPython here, so it is tested as plain functions.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from ..core.errors import NbtuneError

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class MagicUsageError(NbtuneError):
    """A ``%nbtune`` line that cannot be understood."""


def typed(value: str) -> Any:
    """'8' -> 8, '5e-4' -> 0.0005, 'true' -> True, '[a, b]' -> ['a', 'b']; other text stays text."""
    if _NUMBER.match(value):
        number = float(value)
        return int(number) if re.fullmatch(r"[+-]?\d+", value) else number
    import yaml

    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if isinstance(parsed, list):
        return [typed(str(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in parsed]
    return parsed if isinstance(parsed, (bool, list, dict, int, float)) or parsed is None else value


def split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise MagicUsageError(f"Cannot split the line into words ({exc}); check the quotes.") from None


def settings(words: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Separate positional words from ``key=value`` settings (values typed, ``--key value`` accepted too)."""
    positional: list[str] = []
    found: dict[str, Any] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and len(word) > 2:
            key = word[2:].replace("-", "_")
            if "=" in key:
                key, value = key.split("=", 1)
                found[key] = typed(value)
            elif i + 1 < len(words) and not words[i + 1].startswith("--") and "=" not in words[i + 1]:
                found[key] = typed(words[i + 1])
                i += 1
            else:
                found[key] = True
        elif "=" in word and not word.startswith(("re:", "=")) and re.match(r"^[A-Za-z_]\w*=", word):
            key, value = word.split("=", 1)
            found[key] = typed(value)
        else:
            positional.append(word)
        i += 1
    return positional, found


def resolve_ref(value: Any, namespace: dict[str, Any]) -> Any:
    """``$name`` -> the notebook variable; other values unchanged."""
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if name not in namespace:
            raise MagicUsageError(f"{value} is not defined in the notebook; define {name} first or give a file path.")
        return namespace[name]
    return value


def check_keys(given: dict[str, Any], allowed: list[str], command: str) -> None:
    bad = [k for k in given if k not in allowed]
    if bad:
        raise MagicUsageError(f"%nbtune {command} does not take {', '.join(map(repr, bad))}. "
                              f"It takes: {', '.join(allowed) or 'nothing'}.")
