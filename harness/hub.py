"""Whether the Hugging Face hub can be used here, and running offline when it cannot (used by model and data
loading alike)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator


@contextmanager
def hub_offline_unless_reachable() -> Iterator[str | None]:
    """Yields why the Hugging Face hub cannot be used (HF_HUB_OFFLINE set, or no connection), or None. While the hub
    is unreachable, huggingface_hub and datasets run with HF_HUB_OFFLINE on, so a cached copy still loads and a
    missing one fails in seconds instead of a minute of retries; the flags are restored on exit."""
    from huggingface_hub import constants as hub_constants

    try:
        from datasets import config as ds_config
    except ImportError:
        ds_config = None
    flags = [(m, m.HF_HUB_OFFLINE) for m in (hub_constants, ds_config) if m is not None]
    env = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    why = "HF_HUB_OFFLINE is set" if env or any(v for _, v in flags) else hub_unreachable()
    try:
        if why is not None:
            for m, _ in flags:
                m.HF_HUB_OFFLINE = True
        yield why
    finally:
        for m, v in flags:
            m.HF_HUB_OFFLINE = v


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached, or None. One short TCP connect (once per process and endpoint), so an offline
    machine fails in seconds instead of waiting out the hub client's retries; behind a proxy the hub client decides."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    return _tcp_unreachable(url.hostname, port, timeout)


@lru_cache(maxsize=None)
def _tcp_unreachable(host: str, port: int, timeout: float) -> str | None:
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"cannot connect to {host}:{port}: {e.strerror or e}"
    return None
