"""Who may read the index: the auth file (hashes only) and bounded checks of passwords and tokens."""

from __future__ import annotations

from relay.auth.credentials import (
    AuthFileError,
    Authenticator,
    Credentials,
    PasswordChecks,
    TooManyChecks,
    add_entry,
    new_token,
    password_entry,
)

__all__ = [
    "AuthFileError",
    "Authenticator",
    "Credentials",
    "PasswordChecks",
    "TooManyChecks",
    "add_entry",
    "new_token",
    "password_entry",
]
