"""Fetch documents over HTTP(S), also through a SOCKS proxy (the `requests[socks]` extra)."""
from __future__ import annotations

from dataclasses import dataclass

import requests

from wordcount.service.pipeline import Document


@dataclass(frozen=True)
class HttpDocument(Document):
    """A document fetched from ``url``."""

    url: str = ""


def fetch(url: str, *, proxy: str | None = None, timeout: float = 10.0) -> HttpDocument:
    """Download ``url`` as text; ``proxy`` may be e.g. ``socks5h://127.0.0.1:1080``."""
    proxies = {"http": proxy, "https": proxy} if proxy else None
    response = requests.get(url, proxies=proxies, timeout=timeout)
    response.raise_for_status()
    return HttpDocument(name=url, text=response.text, url=url)
