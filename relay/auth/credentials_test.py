"""Authentication: the auth file, basic auth, tokens, and the open health endpoint."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from relay.web.keys import Settings
from relay.auth.credentials import (
    FAILURES_PER_CLIENT,
    MAX_PENDING_CHECKS,
    Authenticator,
    Credentials,
    PasswordChecks,
    TooManyChecks,
    add_entry,
    new_token,
    password_entry,
    read_entries,
)
from relay.cli import main
from relay.conftest import MakeClient
from relay.contract import Export


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def _client_for(make_client: MakeClient, auth_file: Path, settings: Settings = Settings(), **passwords: str) -> TestClient:
    """A relay whose auth file has these users and passwords (cheap hashes: tests, not attacks)."""
    for user, password in passwords.items():
        add_entry(auth_file, password_entry(user, password, iterations=1000))
    return await make_client(auth=Authenticator(auth_file), settings=settings)


@pytest.mark.asyncio
async def test_auth_on(make_client: MakeClient, exports: list[Export], tmp_path: Path) -> None:
    auth_file = tmp_path / "relay.auth"
    add_entry(auth_file, password_entry("alice", "s3cret", iterations=1000))
    token, entry = new_token("ci")
    add_entry(auth_file, entry)
    text = auth_file.read_text()
    assert "s3cret" not in text and token not in text
    client = await make_client(auth=Authenticator(auth_file))

    denied = await client.get("/main/simple/")
    assert denied.status == 401
    assert denied.headers["WWW-Authenticate"].startswith("Basic")
    assert (await client.get("/main/simple/", headers=_basic("alice", "wrong"))).status == 401
    assert (await client.get("/main/simple/", headers=_basic("bob", "s3cret"))).status == 401
    assert (await client.get("/main/simple/", headers={"Authorization": "Bearer nope"})).status == 401

    ok = await client.get("/main/simple/", headers=_basic("alice", "s3cret"))
    assert ok.status == 200
    assert ok.headers["Cache-Control"].startswith("private")
    assert (await client.get("/main/simple/", headers=_basic("alice", "s3cret"))).status == 200
    assert (await client.get("/main/simple/", headers={"Authorization": f"Bearer {token}"})).status == 200
    assert (await client.get("/main/simple/", headers=_basic("__token__", token))).status == 200
    assert (await client.get("/main/simple/", headers=_basic("ci", token))).status == 200
    # Health stays open for load balancers and probes.
    assert (await client.get("/-/health")).status == 200


@pytest.mark.asyncio
async def test_malformed_authorization_headers_are_asked_for_credentials(
    make_client: MakeClient, exports: list[Export], tmp_path: Path
) -> None:
    client = await _client_for(make_client, tmp_path / "relay.auth", alice="s3cret", jose="p\u00e4ss")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    malformed = [
        "Basic",
        "Basic ",
        "Basic !!!not-base64!!!",
        "Basic " + b64(b"alice"),  # no colon
        "Basic " + b64(b"\xff\xfe:s3cret"),  # not UTF-8
        "Basic " + b64(b"alice:s3cret")[:-2],  # cut short
        "Digest username=alice",
        "alice:s3cret",
        "Bearer",
    ]
    for header in malformed:
        response = await client.get("/main/simple/", headers={"Authorization": header})
        assert response.status == 401, header
        assert response.headers["WWW-Authenticate"] == 'Basic realm="relay", charset="UTF-8"'
    # What clients send: any case of the scheme, spaces after it, UTF-8 passwords.
    for header in (
        "basic " + b64(b"alice:s3cret"),
        "BASIC   " + b64(b"alice:s3cret"),
        "Basic " + b64("jose:p\u00e4ss".encode()),
    ):
        assert (await client.get("/main/simple/", headers={"Authorization": header})).status == 200, header


@pytest.mark.asyncio
async def test_concurrent_first_requests_share_one_password_check(
    make_client: MakeClient, exports: list[Export], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_file = tmp_path / "relay.auth"
    # Slow enough (about 0.1 s) that all eight requests arrive while the first check runs.
    add_entry(auth_file, password_entry("alice", "s3cret", iterations=200_000))
    auth = Authenticator(auth_file)
    slow_checks = []
    real_check = auth.check

    def counting_check(credentials: Credentials | None, slow: bool = True) -> str | None | bool:
        if slow:
            slow_checks.append(credentials)
        return real_check(credentials, slow)

    monkeypatch.setattr(auth, "check", counting_check)
    client = await make_client(auth=auth)
    responses = await asyncio.gather(
        *(client.get("/main/simple/", headers=_basic("alice", "s3cret")) for _ in range(8))
    )
    assert [r.status for r in responses] == [200] * 8
    assert len(slow_checks) == 1
    wrong = await asyncio.gather(
        *(client.get("/main/simple/", headers=_basic("alice", "wrong")) for _ in range(4))
    )
    assert [r.status for r in wrong] == [401] * 4


@pytest.mark.asyncio
async def test_auth_off(client) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/main/simple/")).status == 200


def test_passwd_and_token_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    auth_file = tmp_path / "relay.auth"
    monkeypatch.setattr("sys.stdin", io.StringIO("pw1\n"))
    assert main(["passwd", str(auth_file), "alice", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("pw2\n"))
    assert main(["passwd", str(auth_file), "alice", "--password-stdin"]) == 0
    assert main(["token", str(auth_file), "ci"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    entries = read_entries(auth_file)
    assert [e.user for e in entries] == ["alice", "ci"]
    assert oct(auth_file.stat().st_mode & 0o777) == "0o600"
    auth = Authenticator(auth_file)
    assert auth.check(Credentials("alice", "pw2")) == "alice"
    assert auth.check(Credentials("alice", "pw1")) is None
    assert auth.check(Credentials.token(token)) == "ci"
    assert main(["passwd", str(auth_file), "bad name", "--password-stdin"]) == 1


@pytest.mark.asyncio
async def test_health_is_minimal_with_auth_on(make_client: MakeClient, exports: list[Export], tmp_path: Path) -> None:
    auth_file = tmp_path / "relay.auth"
    add_entry(auth_file, new_token("ci")[1])
    client = await make_client(auth=Authenticator(auth_file))
    response = await client.get("/-/health")
    assert response.status == 200
    # Nothing about the store or the commits being built for a client without credentials.
    assert await response.json() == {"status": "ok"}


def test_a_malformed_auth_file_fails_closed_for_the_lines_that_no_longer_parse(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import os

    auth_file = tmp_path / "relay.auth"
    add_entry(auth_file, password_entry("alice", "pw", iterations=1000))
    token, entry = new_token("ci")
    add_entry(auth_file, entry)
    auth = Authenticator(auth_file)
    assert auth.check(Credentials("alice", "pw")) == "alice"
    assert auth.check(Credentials.token(token)) == "ci"
    # Revoking ci with a typo that breaks its line: the token must stop working, alice keeps hers.
    lines = auth_file.read_text().splitlines()
    auth_file.write_text(lines[0] + "\n" + lines[1].replace("$", "#", 1) + "\n")
    os.utime(auth_file, ns=(1, 1))
    with caplog.at_level(logging.WARNING, logger="relay.auth"):
        assert auth.check(Credentials.token(token)) is None
        assert auth.check(Credentials.token(token)) is None
        assert auth.check(Credentials("alice", "pw")) == "alice"
    problems = [r for r in caplog.records if "relay.auth:2" in r.getMessage()]
    assert len(problems) == 1, [r.getMessage() for r in caplog.records]
    # A file that cannot be read at all keeps nobody in.
    auth_file.unlink()
    assert auth.check(Credentials("alice", "pw")) is None


def test_an_unknown_user_costs_the_same_pbkdf2_as_a_known_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    import relay.auth.credentials as auth_module

    auth_file = tmp_path / "relay.auth"
    add_entry(auth_file, password_entry("alice", "pw", iterations=1000))
    auth = Authenticator(auth_file)
    calls: list[int] = []
    real = hashlib.pbkdf2_hmac

    def counting(name: str, password: bytes, salt: bytes, iterations: int, dklen: int | None = None) -> bytes:
        calls.append(iterations)
        return real(name, password, salt, iterations, dklen)

    monkeypatch.setattr(auth_module.hashlib, "pbkdf2_hmac", counting)
    assert auth.check(Credentials("alice", "wrong"), slow=False) is False
    assert auth.check(Credentials("alice", "wrong")) is None
    # No user enumeration by timing: an unknown user takes the slow path and one PBKDF2 of equal cost.
    assert auth.check(Credentials("mallory", "wrong"), slow=False) is False
    assert auth.check(Credentials("mallory", "wrong")) is None
    assert calls == [1000, 1000]
    # A failure is remembered: a client retrying one wrong password costs nothing more.
    assert auth.check(Credentials("mallory", "wrong"), slow=False) is None
    assert auth.check(Credentials("alice", "wrong"), slow=False) is None
    assert calls == [1000, 1000]


@pytest.mark.asyncio
async def test_the_password_work_of_unauthenticated_clients_is_bounded(
    make_client: MakeClient, exports: list[Export], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import threading

    import relay.auth.credentials as auth_module

    auth_file = tmp_path / "relay.auth"
    add_entry(auth_file, password_entry("alice", "s3cret", iterations=1000))
    token, entry = new_token("ci")
    add_entry(auth_file, entry)
    release = threading.Event()
    calls: list[int] = []
    real = hashlib.pbkdf2_hmac

    def held(name: str, password: bytes, salt: bytes, iterations: int, dklen: int | None = None) -> bytes:
        # Every check blocks until released: as if the cores were busy hashing.
        calls.append(iterations)
        release.wait(30)
        return real(name, password, salt, iterations, dklen)

    monkeypatch.setattr(auth_module.hashlib, "pbkdf2_hmac", held)
    client = await make_client(auth=Authenticator(auth_file), settings=Settings(memory_cache_bytes=0))
    try:
        attack = [
            asyncio.ensure_future(client.get("/main/simple/", headers=_basic("alice" if n % 2 else f"user{n}", f"guess{n}")))
            for n in range(40)
        ]
        await asyncio.sleep(0.2)
        # Meanwhile a client with a token is served, a file read off the loop included: the hashing
        # runs on its own threads, never on those that serve.
        dist = exports[0].dists[0]
        served = await asyncio.wait_for(
            client.get(f"/{exports[0].sha}/{dist.filename}", headers={"Authorization": f"Bearer {token}"}), 10
        )
        assert served.status == 200
        release.set()
        statuses = [r.status for r in await asyncio.gather(*attack)]
    finally:
        release.set()
    # Most of the 40 were refused without hashing; none got in.
    assert set(statuses) <= {401, 429}
    assert statuses.count(429) >= 30
    assert len(calls) <= MAX_PENDING_CHECKS
    # One client's failed checks of one user name are bounded too: its guesses end in 429, without hashing.
    hashed = len(calls)
    answers = [(await client.get("/main/simple/", headers=_basic("alice", f"again{n}"))).status for n in range(12)]
    assert answers[-1] == 429 and len(calls) - hashed <= FAILURES_PER_CLIENT
    refused = await client.get("/main/simple/", headers=_basic("alice", "s3cret"))
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    # A client with a token is never limited.
    assert (await client.get("/main/simple/", headers={"Authorization": f"Bearer {token}"})).status == 200


@pytest.mark.asyncio
async def test_a_lockout_is_not_forgotten_when_many_other_names_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import relay.auth.credentials as auth_module

    auth_file = tmp_path / "relay.auth"
    add_entry(auth_file, password_entry("alice", "s3cret", iterations=1))
    monkeypatch.setattr(auth_module, "MAX_FAILING_CLIENTS", 20)
    checks = PasswordChecks(Authenticator(auth_file))
    try:
        for n in range(FAILURES_PER_CLIENT):
            assert await checks.check(Credentials("alice", f"guess{n}"), "203.0.113.66") is None
        with pytest.raises(TooManyChecks):
            await checks.check(Credentials("alice", "s3cret"), "203.0.113.66")
        # The same client fails with other names until the table of failing (client, name) pairs is
        # full: new pairs are then refused, and alice's lockout from that client still holds.
        refused = 0
        for n in range(40):
            try:
                await checks.check(Credentials(f"user{n}", "guess"), "203.0.113.66")
            except TooManyChecks:
                refused += 1
        assert refused == 40 - (20 - 1)
        with pytest.raises(TooManyChecks):
            await checks.check(Credentials("alice", "s3cret"), "203.0.113.66")
    finally:
        checks.close()


@pytest.mark.asyncio
async def test_behind_a_proxy_one_users_wrong_passwords_lock_out_nobody_else(
    make_client: MakeClient, exports: list[Export], tmp_path: Path
) -> None:
    from relay.web.forwarded import ProxySettings, parse_trusted_proxies

    # Every request comes from the proxy (the test client, 127.0.0.1), which names the client.
    proxy = ProxySettings(trusted_proxies=parse_trusted_proxies(["127.0.0.1"]))
    client = await _client_for(make_client, tmp_path / "relay.auth", Settings(proxy=proxy), alice="s3cret", bob="hunter2")

    def via(address: str, user: str, password: str) -> dict[str, str]:
        return {**_basic(user, password), "X-Forwarded-For": address}

    mallory = "203.0.113.66"
    answers = [
        (await client.get("/main/simple/", headers=via(mallory, "alice", f"guess{n}"))).status
        for n in range(FAILURES_PER_CLIENT + 2)
    ]
    assert answers[-1] == 429
    # alice, from her own address, with her password: in, though mallory guessed at her name.
    assert (await client.get("/main/simple/", headers=via("198.51.100.10", "alice", "s3cret"))).status == 200
    # bob, behind the same NAT address as mallory: in too; the limit is on (client, user name).
    assert (await client.get("/main/simple/", headers=via(mallory, "bob", "hunter2"))).status == 200
    # mallory cannot slip out of the limit by forging the header: the proxy appends the real address.
    forged = await client.get("/main/simple/", headers=via(f"1.2.3.4, {mallory}", "alice", "again"))
    assert forged.status == 429


@pytest.mark.asyncio
async def test_without_a_trusted_proxy_forwarded_headers_do_not_lift_the_limit(
    make_client: MakeClient, exports: list[Export], tmp_path: Path
) -> None:
    auth_file = tmp_path / "relay.auth"
    add_entry(auth_file, password_entry("alice", "s3cret", iterations=1000))
    client = await make_client(auth=Authenticator(auth_file))
    answers = [
        (await client.get("/main/simple/", headers={**_basic("alice", f"g{n}"), "X-Forwarded-For": f"10.9.9.{n}"})).status
        for n in range(FAILURES_PER_CLIENT + 2)
    ]
    assert answers[-1] == 429
