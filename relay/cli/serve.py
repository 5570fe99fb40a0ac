"""`export-dists-relay serve`: the composition root, where the store, refs, builder and app are made and wired."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from relay.auth.credentials import AuthFileError, Authenticator
from relay.building import BuildSystemError, build_systems
from relay.building.builders import ExportCommand, WarmLimits
from relay.building.materialize import Limits, Materializer, WorkDirInUse, claim_work_dir
from relay.cli.parser import PROG
from relay.cli.workers import Workers, fork, listen
from relay.git import Git
from relay.index.refs import Refs
from relay.storage.factory import check_store, open_store
from relay.storage.store import EvictionPolicy, StoreConfigError
from relay.web.access_log import LOG_FORMAT, AccessLogger
from relay.web.app import create_app
from relay.web.keys import Settings
from relay.web.forwarded import ProxySettings, PublicURLError, may_carry_credentials, parse_public_url, parse_trusted_proxies
from relay.web.install_lines import PUBLIC_INDEX
from relay.web.server import ConnectionLimits, default_max_connections, serve

logger = logging.getLogger("relay")


async def _export_command(git: Git, build_system: str, ref: str, *, warm: bool) -> ExportCommand:
    if build_system == build_systems.AUTO:
        build_system = await build_systems.detect(git, ref)
    logger.info("building commits with %s", build_system)
    return build_systems.export_command(build_system, warm=warm)


def _git_repo(path: Path) -> Path:
    result = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--git-dir"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"{PROG}: --repo {path} is not a git repository: {result.stderr.strip()}")
    return path.resolve()


def log_to_stderr(level: str) -> logging.StreamHandler[TextIO] | None:
    """Every log line to stderr in LOG_FORMAT. The handler is returned for the access log to write
    its lines to directly (None: they go through `logging` like any other)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    # basicConfig leaves a logging set up before (a program that runs the command) as it is.
    return handler if handler in logging.getLogger().handlers else None


def serve_command(args: argparse.Namespace) -> int:
    log_handler = log_to_stderr(args.log_level)
    # Every path option is made absolute now: builds run git and commands in other directories.
    for option in ("repo", "work_dir", "auth_file"):
        value = getattr(args, option)
        if value is not None:
            setattr(args, option, Path(os.path.abspath(value.expanduser())))
    if "://" not in args.store:
        args.store = os.path.abspath(os.path.expanduser(args.store))
    try:
        # Manifests over 1 MiB are parsed on a directory store's own thread: requests never wait.
        store = open_store(args.store, lease_seconds=args.build_lease, background_parse_bytes=1 << 20)
        asyncio.run(check_store(store))
    except StoreConfigError as e:
        raise SystemExit(f"{PROG}: {e}") from None
    git = Git(_git_repo(args.repo)) if args.repo else None
    materializer = None
    if git is not None and not args.no_build:
        limits = Limits(max_jobs=args.max_builds, timeout_seconds=args.build_timeout, max_queued=args.max_queued)
        # A work directory per store (a directory, or a bucket and prefix), the same on every start,
        # owned by one relay at a time (replicas on one host get one each).
        try:
            claim = claim_work_dir(args.work_dir, store.identity)
        except WorkDirInUse as e:
            raise SystemExit(f"{PROG}: {e}") from None
        work_dir = claim.path
        logger.info("work directory %s (worktrees, build logs, records of running builds)", work_dir)
        warm = None
        if args.builder == "warm":
            warm = WarmLimits(max_builds=args.builder_max_builds, max_memory=args.builder_max_memory or 4 * 1024**3)
        try:
            command = ExportCommand(args.export_command) if args.export_command else asyncio.run(
                _export_command(git, args.build_system, args.default_ref, warm=warm is not None)
            )
        except BuildSystemError as e:
            raise SystemExit(f"relay: {e}") from None
        materializer = Materializer(
            git, store, command, limits, work_dir, warm=warm, build_unreachable=args.build_unreachable
        )
        # Before serving (and before forking workers): what a relay killed earlier left running.
        materializer.clean_up()
    follow = tuple(dict.fromkeys([args.default_ref, *args.follow])) if materializer else ()
    refs = Refs(
        store, git, materializer, refresh_interval=args.refresh_interval, follow=follow,
        wait_for_tip=args.wait_for_tip, tip_wait=args.tip_wait,
    )
    auth = None
    if args.auth_file:
        try:
            auth = Authenticator(args.auth_file)
        except (OSError, AuthFileError) as e:
            raise SystemExit(f"{PROG}: --auth-file {args.auth_file}: {e}") from None
    try:
        proxy = ProxySettings(
            public_url=parse_public_url(args.public_url) if args.public_url else None,
            trusted_proxies=parse_trusted_proxies(args.trusted_proxy),
            headers=args.proxy_headers,
        )
    except PublicURLError as e:
        raise SystemExit(f"{PROG}: {e}") from None
    settings = Settings(
        proxy=proxy,
        default_ref=args.default_ref,
        upstream=args.upstream,
        namespaces=tuple(args.namespace),
        branch_max_age=args.branch_max_age,
        memory_cache_bytes=args.memory_cache or 0,
        redirect_files=args.redirect_files,
        policy=EvictionPolicy(
            max_age_seconds=args.max_age_days * 86400 if args.max_age_days > 0 else None,
            max_size_bytes=args.max_size,
        ),
    )
    app = create_app(store, refs, settings, auth, materializer)
    mode = "pull" if materializer else "push"
    logger.info(
        "serving %s on http://%s:%d/ (%s mode, default ref %s)",
        store.description, args.host, args.port, mode, args.default_ref,
    )
    if args.upstream is None:
        logger.warning(
            "no --upstream: names that are not the monorepo's are a 404 here, so `pip install --index-url "
            "<relay>/<ref>/simple/ NAME` fails on the first third-party requirement; the pages show the line that "
            "works (with --extra-index-url %s); start with --upstream %s to make the relay the only index",
            PUBLIC_INDEX, PUBLIC_INDEX,
        )
    if proxy.public_url is not None:
        logger.info("public URL %s: every absolute URL the relay prints starts with it", proxy.public_url)
    for line in proxy_notes(proxy, args.host, auth is not None):
        logger.warning("%s", line)
    connection_limits = ConnectionLimits(
        idle_timeout=args.idle_timeout, max_connections=default_max_connections(args.max_connections)
    )
    # Several workers accept on one socket bound before they fork: the kernel spreads connections.
    sock = listen(args.host, args.port) if args.workers > 1 else None
    workers = fork(args.workers - 1) if sock is not None else Workers([])
    try:
        serve(
            app,
            connection_limits,
            host=None if sock else args.host,
            port=None if sock else args.port,
            sock=sock,
            shutdown_timeout=args.shutdown_timeout,
            access_log=None if args.no_access_log else logging.getLogger("relay.access"),
            # The measured writer where the lines go to the stream of our own LOG_FORMAT handler.
            access_log_class=AccessLogger if log_handler is None else AccessLogger.writing_to(log_handler),
            # Oversized request lines and headers get a 400 before any handler runs (aiohttp's
            # defaults, said here).
            max_line_size=8190,
            max_field_size=8190,
            # A client that gave up stops waiting for a build: the queue drops a build nobody waits for.
            handler_cancellation=True,
        )
    finally:
        workers.stop()
    if workers.died:
        logger.error("stopped: %s", "; ".join(workers.died))
        return 1
    logger.info("stopped")
    return 0


def proxy_notes(proxy: ProxySettings, host: str, auth: bool) -> list[str]:
    """Warnings for the operator at start-up: where credentials would cross the network in clear text."""
    notes = []
    if auth and proxy.public_url is not None and not may_carry_credentials(proxy.public_url):
        notes.append(
            f"--auth-file with --public-url {proxy.public_url}: credentials cross the network in clear "
            "text; put a TLS proxy in front and give its https:// URL"
        )
    elif auth and proxy.public_url is None and not proxy.trusted_proxies and host not in ("127.0.0.1", "::1", "localhost"):
        notes.append(
            f"--auth-file on {host} without --trusted-proxy or --public-url: unless clients come through a "
            "TLS proxy, credentials cross the network in clear text; name the proxy with --trusted-proxy "
            "(pages then print its https:// URLs) or give --public-url"
        )
    return notes
