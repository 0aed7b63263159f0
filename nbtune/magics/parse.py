"""Pure parsing for ``%nbtune`` lines: words, ``key=value`` settings and ``$name`` references.

No IPython here, so it is tested as plain functions.
"""

from __future__ import annotations

import csv
import re
import shlex
from typing import Any

from nbtune.core.common.errors import MagicUsageError

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_WORDS = {"true": True, "false": False, "none": None, "null": None}


def typed(value: str) -> Any:
    """A setting's text as a value, by fixed rules only: numbers (``8``, ``5e-4``), ``true``/``false``,
    ``none``, and ``[a, b]`` lists of such values; any other text stays text. (YAML 1.1 would turn ``no`` into
    False and ``[no, yes]`` into booleans, so a label list such as ``labels=[no,yes]`` could not be written.)"""
    text = value.strip()
    if _NUMBER.match(text):
        number = float(text)
        return int(number) if re.fullmatch(r"[+-]?\d+", text) else number
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        if not inner:
            return []
        try:
            items = next(csv.reader([inner], skipinitialspace=True))
        except (csv.Error, StopIteration):
            return value
        return [typed(item) for item in items]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return value


def strip_comment(line: str) -> str:
    """The line without a trailing ``# comment``: a ``#`` outside quotes at the start or after a space."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def split(line: str) -> list[str]:
    """Shell-like words of a ``%nbtune`` line (quotes group, a trailing ``# comment`` is ignored)."""
    try:
        return shlex.split(strip_comment(line))
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
