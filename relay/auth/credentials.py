"""Credentials: the auth file (hashes only), its entries, and checking the user name and password (or token) a request gave."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cachetools import LRUCache, TTLCache

from relay.upkeep import Problems

logger = logging.getLogger("relay.auth")

PBKDF2 = "pbkdf2_sha256"
TOKEN = "token_sha256"
PBKDF2_ITERATIONS = 600_000
TOKEN_USER = "__token__"
# Accepted credentials remembered (the least recently used are forgotten beyond this many); wrong
# user/password pairs likewise, so a client retrying one wrong password costs one PBKDF2.
MAX_ACCEPTED_CREDENTIALS = 1024
MAX_REMEMBERED_FAILURES = 4096
# What a client without valid credentials can make the relay hash: password checks run on their own
# threads (never those that read files), at most this many wait or run at once, and a client with
# this many failed checks of one user name in the window gets 429 for that name until it passes.
CHECK_THREADS = 1
MAX_PENDING_CHECKS = 4
FAILURES_PER_CLIENT = 10
FAILURE_WINDOW_SECONDS = 60.0
# (client, user name) pairs with a failed check in the window that are remembered; beyond them, new
# pairs are refused (429) rather than any failure forgotten.
MAX_FAILING_CLIENTS = 10_000
_USER = re.compile(r"[A-Za-z0-9_.@-]+")


class AuthFileError(ValueError):
    pass


@dataclass(frozen=True)
class Credentials:
    """What a request gave (relay.web.guard reads them from its Authorization header): a user name and
    password, or a token as the password of `__token__` (or of the token's own name)."""

    user: str
    password: str = field(repr=False)

    @staticmethod
    def token(token: str) -> Credentials:
        return Credentials(TOKEN_USER, token)

    def digest(self) -> bytes:
        """What memos keep instead of the password."""
        return hashlib.sha256(f"{self.user}\0{self.password}".encode()).digest()


@dataclass(frozen=True)
class Entry:
    """One line of the auth file: `user:scheme$...`."""

    user: str
    scheme: str
    fields: tuple[str, ...]

    def line(self) -> str:
        return f"{self.user}:{self.scheme}${'$'.join(self.fields)}"

    def verify(self, secret: str) -> bool:
        if self.scheme == TOKEN:
            # Tokens are 256 random bits: a fast hash cannot be brute-forced, and a request costs nothing.
            token_digest = hashlib.sha256(secret.encode()).hexdigest()
            return hmac.compare_digest(token_digest, self.fields[0])
        iterations, salt, expected = self.fields
        digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(base64.b64encode(digest).decode(), expected)


def password_entry(user: str, password: str, iterations: int = PBKDF2_ITERATIONS) -> Entry:
    check_user(user)
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return Entry(
        user, PBKDF2, (str(iterations), base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    )


def new_token(name: str) -> tuple[str, Entry]:
    """A fresh token (shown once) and the entry that stores only its hash."""
    check_user(name)
    token = "relay_" + secrets.token_urlsafe(32)
    return token, Entry(name, TOKEN, (hashlib.sha256(token.encode()).hexdigest(),))


def check_user(user: str) -> None:
    if not _USER.fullmatch(user) or user == TOKEN_USER:
        raise AuthFileError(
            f"{user!r} is not a usable name: letters, digits and _ . @ - only, and not {TOKEN_USER!r}"
        )


def parse_entry(line: str, where: str) -> Entry:
    user, sep, rest = line.partition(":")
    scheme, _, fields = rest.partition("$")
    entry = Entry(user, scheme, tuple(fields.split("$")))
    expected = {PBKDF2: 3, TOKEN: 1}.get(scheme)
    if not sep or not _USER.fullmatch(user) or expected != len(entry.fields):
        raise AuthFileError(
            f"{where}: not an entry (expected `user:{PBKDF2}$iterations$salt$hash` or "
            f"`name:{TOKEN}$hash`; create entries with `export-dists-relay passwd` or `export-dists-relay token`)"
        )
    try:
        if scheme == PBKDF2:
            int(entry.fields[0])
            base64.b64decode(entry.fields[1], validate=True)
            base64.b64decode(entry.fields[2], validate=True)
        else:
            bytes.fromhex(entry.fields[0])
    except (ValueError, binascii.Error):
        raise AuthFileError(f"{where}: the hash fields are malformed") from None
    return entry


def read_entries(path: Path) -> list[Entry]:
    """Every entry of the file; the first malformed line is an AuthFileError."""
    entries, problems = read_entries_leniently(path)
    if problems:
        raise problems[0]
    return entries


def read_entries_leniently(path: Path) -> tuple[list[Entry], list[AuthFileError]]:
    """The entries that parse, and an error for each line that does not."""
    entries, problems = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                entries.append(parse_entry(line, f"{path}:{number}"))
            except AuthFileError as e:
                problems.append(e)
    return entries, problems


def add_entry(path: Path, entry: Entry) -> None:
    """Add or replace the user's entry (a token name may hold several tokens: they are added)."""
    lines = path.read_text().splitlines() if path.exists() else []
    if entry.scheme == PBKDF2:
        lines = [l for l in lines if not (l.startswith(entry.user + ":" + PBKDF2 + "$"))]
    lines.append(entry.line())
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


class Authenticator:
    """Checks credentials against the auth file, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, ...] | None = None
        self._passwords: dict[str, Entry] = {}
        self._tokens: dict[str, Entry] = {}
        # Digests of passwords already verified, or found wrong: PBKDF2 is slow on purpose, once per
        # credential. A wrong one forgotten (beyond MAX_REMEMBERED_FAILURES) is hashed again when it
        # comes back, and counts again as a failure of its client: nothing is let in by forgetting.
        self._verified: set[bytes] = set()
        self._failed: LRUCache[bytes, bool] = LRUCache(maxsize=MAX_REMEMBERED_FAILURES)
        # Checked for users the file does not have, so they cost what a real user costs (no user
        # enumeration by timing); it matches no password.
        self._decoy = _decoy(PBKDF2_ITERATIONS)
        # Digests of credentials already accepted, and whose: a client sends the same ones every time.
        # Digests, like _verified: no password is kept in memory. Credentials forgotten (beyond
        # MAX_ACCEPTED_CREDENTIALS) are checked again. The memos are shared with the check threads:
        # every use, a read included (it reorders), holds the lock.
        self._accepted: LRUCache[bytes, str] = LRUCache(maxsize=MAX_ACCEPTED_CREDENTIALS)
        self._lock = threading.Lock()
        # A bad edit or an unreadable file is logged once, not once per request.
        self._problem = Problems(logger, "auth file ")
        self.reload(strict=True)

    def reload(self, strict: bool = False) -> None:
        """Re-read the file if it changed. A line that no longer parses grants nothing (fail closed:
        a revocation with a typo must still revoke); strict=True refuses such a file instead."""
        st = self.path.stat()
        stamp = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        if stamp == self._stamp:
            return
        entries, problems = read_entries_leniently(self.path)
        if problems and strict:
            raise problems[0]
        self._install(entries, stamp)
        if problems:
            self._problem.report("; ".join(str(p) for p in problems) + " (that line grants nothing)")
        else:
            self._problem.resolve()

    def _install(self, entries: list[Entry], stamp: tuple[int, ...] | None) -> None:
        with self._lock:
            self._passwords = {e.user: e for e in entries if e.scheme == PBKDF2}
            self._tokens = {e.fields[0]: e for e in entries if e.scheme == TOKEN}
            costs = [int(e.fields[0]) for e in self._passwords.values()]
            self._decoy = _decoy(max(costs) if costs else PBKDF2_ITERATIONS)
            self._verified = set()
            self._failed.clear()
            self._accepted.clear()
            self._stamp = stamp

    def _reload_quietly(self) -> None:
        try:
            self.reload()
        except OSError as e:
            # No file, no credentials: nobody gets in until it is back.
            if self._stamp is not None or self._passwords or self._tokens:
                self._install([], None)
            self._problem.report(f"{self.path} cannot be read ({e.strerror}): every request is refused")

    def check(self, credentials: Credentials | None, slow: bool = True) -> str | None | bool:
        """The user the credentials authenticate, or None (none given, or not good ones).

        With slow=False, answers False instead of running PBKDF2 on a password not yet verified, so
        the caller can run the slow check off the event loop.
        """
        if credentials is None:
            return None
        self._reload_quietly()
        key = credentials.digest()
        with self._lock:
            accepted = self._accepted.get(key)
        if accepted is not None:
            return accepted
        stamp = self._stamp
        user = self._check(credentials, key, slow)
        if isinstance(user, str):
            with self._lock:
                if self._stamp != stamp:
                    return user  # the file changed meanwhile: accepted by the old entries, not remembered
                self._accepted[key] = user
        return user

    def _check(self, credentials: Credentials, key: bytes, slow: bool) -> str | None | bool:
        user, password = credentials.user, credentials.password
        token_user = self._check_token(password)
        # A token works as the password of `__token__` or of the token's own name (as PyPI's do).
        if token_user is not None and user in (TOKEN_USER, token_user):
            return token_user
        if user == TOKEN_USER:
            return None  # a wrong token: no password to hash
        entry = self._passwords.get(user)
        if key in self._verified:
            return user
        with self._lock:
            if key in self._failed:
                return None
        if not slow:
            return False
        if (entry or self._decoy).verify(password) and entry is not None:
            with self._lock:
                self._verified.add(key)
            return user
        with self._lock:
            self._failed[key] = True
        return None

    def _check_token(self, token: str) -> str | None:
        entry = self._tokens.get(hashlib.sha256(token.encode()).hexdigest())
        return entry.user if entry is not None else None


def _decoy(iterations: int) -> Entry:
    """A PBKDF2 entry of the given cost that no password matches (its hash is random)."""
    salt, digest = (base64.b64encode(os.urandom(n)).decode() for n in (16, 32))
    return Entry("-", PBKDF2, (str(iterations), salt, digest))


class TooManyChecks(Exception):
    """A password check refused before any hashing; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PasswordChecks:
    """Runs the slow checks of an Authenticator for the event loop, within bounds.

    Concurrent requests with one header share one check (pip opens several connections at once);
    checks run on their own threads so serving never waits behind them; beyond MAX_PENDING_CHECKS
    waiting or running, or FAILURES_PER_CLIENT failures of one client for one user name in the
    window, a request is refused (429) without hashing. The limit is keyed on both: a client guessing
    bob's password never locks out alice behind the same proxy or NAT, and guesses at alice's from
    elsewhere never lock out alice herself. `client` is the real client (relay.web.forwarded).
    """

    def __init__(self, auth: Authenticator, threads: int = CHECK_THREADS, max_pending: int = MAX_PENDING_CHECKS) -> None:
        self.auth = auth
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="relay-auth")
        self._pending: dict[Credentials, asyncio.Future[str | None | bool]] = {}
        # (client, user name) -> when its last failures were. An entry expires with its newest failure
        # (set again at each one): only then has it no failure in the window, so expiry forgets
        # nothing that counts. A full table does not forget either (a client could flood it with
        # other names to wipe its own record): new pairs are refused until entries expire. The
        # slack above MAX_FAILING_CLIENTS holds the checks under way, so nothing is ever evicted.
        self._failures: TTLCache[tuple[str, str], deque[float]] = TTLCache(
            maxsize=MAX_FAILING_CLIENTS + max_pending, ttl=FAILURE_WINDOW_SECONDS
        )

    async def check(self, credentials: Credentials, client: str | None) -> str | None:
        now = time.monotonic()
        key = (client or "", credentials.user)
        failures = self._failures.get(key)
        if failures is None:
            self._failures.expire()
            if len(self._failures) >= MAX_FAILING_CLIENTS:
                retry = int(FAILURE_WINDOW_SECONDS)
                raise TooManyChecks(f"too many failed logins from many clients; retry in {retry} s", retry)
        if failures is not None:
            while failures and now - failures[0] > FAILURE_WINDOW_SECONDS:
                failures.popleft()
            if len(failures) >= FAILURES_PER_CLIENT:
                retry = int(FAILURE_WINDOW_SECONDS - (now - failures[0])) + 1
                raise TooManyChecks(
                    f"too many failed logins as {key[1]!r} from {key[0]}; retry in {retry} s", retry
                )
        check = self._pending.get(credentials)
        # Requests sharing a check count as one failure: pip opens several connections at once.
        first = check is None
        if check is None:
            if len(self._pending) >= self.max_pending:
                raise TooManyChecks("too many logins being checked at once; retry in a second", 1)
            loop = asyncio.get_running_loop()
            check = asyncio.ensure_future(loop.run_in_executor(self._executor, self.auth.check, credentials))
            self._pending[credentials] = check
            check.add_done_callback(lambda _: self._pending.pop(credentials, None))
        result = await asyncio.shield(check)
        if isinstance(result, str):
            return result
        if first:
            self._failed(key, now)
        return None

    def _failed(self, key: tuple[str, str], now: float) -> None:
        failures = self._failures.get(key) or deque(maxlen=FAILURES_PER_CLIENT)
        failures.append(now)
        self._failures[key] = failures  # set again: the entry lasts the window from its newest failure

    def close(self) -> None:
        self._executor.shutdown(wait=False)
