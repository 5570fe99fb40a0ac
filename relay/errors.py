"""The one exception type a handler turns into an HTTP answer."""

from __future__ import annotations


class RelayError(Exception):
    """A request the relay cannot answer with content; `status` is the HTTP status, `headers` extra ones."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
