"""Whether the Hugging Face Hub can be used from here, decided once per process.

Offline without ``HF_HUB_OFFLINE`` set (a laptop on a train, a firewalled cluster, this project's CI), every hub
call retries with back-off: about 25 s and eleven "Retrying" lines per dataset or model before the library gives
up. One socket connection to the hub's host (3 s at most; a failing DNS look-up answers at once) tells the same
thing, and callers then ask for cached files only (``local_files_only``) or use their offline fall-back, saying why
in one line. Behind an HTTP(S) proxy a direct connection proves nothing, so the libraries are left to try.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # what transformers and huggingface_hub obey
DATASETS_OFFLINE = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")  # what datasets obeys
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")
_TRUE = ("1", "true", "yes", "on")


def hub_offline_reason(switches: tuple[str, ...] = _OFFLINE_VARIABLES) -> str | None:
    """Why the hub cannot be used here (one of the offline ``switches`` is set, or its host cannot be reached), or
    None. Datasets pass their own switches (``HF_DATASETS_OFFLINE`` is not about models, nor the reverse)."""
    for variable in switches:
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return f"{variable} is set"
    if any(os.environ.get(variable) for variable in _PROXY_VARIABLES):
        return None
    return _unreachable(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")


@functools.lru_cache(maxsize=None)
def _unreachable(endpoint: str) -> str | None:
    url = urlparse(endpoint)
    host, port = url.hostname or endpoint, url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return f"{host} cannot be reached: {exc}"
    return None
