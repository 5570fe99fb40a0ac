"""The commands besides serve: passwd and token (credentials), check and publish (stores), verify."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
import textwrap

from relay.auth.credentials import AuthFileError, add_entry, new_token, password_entry
from relay.cli.parser import PROG
from relay.contract import ContractError
from relay.storage.factory import open_store, publish_export
from relay.storage.store import PublishConflict, Store, StoreConfigError, StoreUnavailable
from relay.tools.interpreters import NoSuitablePython, choose_python
from relay.tools.verify import VerifyError, export_source, format_outcome, index_source, select, verify
from relay.web.access_log import LOG_FORMAT


def passwd_command(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print(f"{PROG}: the passwords differ; nothing changed", file=sys.stderr)
            return 1
    if not password:
        print(f"{PROG}: an empty password is refused", file=sys.stderr)
        return 1
    try:
        add_entry(args.file, password_entry(args.user, password))
    except AuthFileError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    print(f"{args.user}: password stored in {args.file}")
    return 0


def token_command(args: argparse.Namespace) -> int:
    try:
        token, entry = new_token(args.name)
    except AuthFileError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    add_entry(args.file, entry)
    print(token)
    print(f"(token for {args.name} stored in {args.file} as a hash; it is shown only now)", file=sys.stderr)
    return 0


def check_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)
    try:
        store = open_store(args.store, create=False, catalog=False)
        asyncio.run(_list_once(store))
    except (StoreConfigError, StoreUnavailable) as e:
        print(f"{PROG} check: {e}", file=sys.stderr)
        return 2
    for key, stored in sorted(store.exports().items()):
        export = stored.export
        print(
            f"ok    {key}  {export.version}  {len(export.dists)} dists  {stored.size} bytes  "
            f"branches={','.join(export.branches)}"
        )
    for name, problem in sorted(store.problems.items()):
        print(f"skip  {name or args.store}: {textwrap.shorten(problem, 300)}")
    return 1 if store.problems else 0


async def _list_once(store: Store) -> None:
    await store.start()
    await store.close()


def publish_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
    try:
        store = open_store(args.store)
        key, written = asyncio.run(publish_export(store, args.export_dir))
    except (StoreConfigError, StoreUnavailable, ContractError, PublishConflict) as e:
        print(f"{PROG} publish: {e}", file=sys.stderr)
        return 1
    already = " (already there: nothing new)" if written == 0 else ""
    print(f"published {key} to {store.description}: {written} objects written{already}")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    pip_args = [a for url in args.extra_index_url for a in ("--extra-index-url", url)]
    try:
        if args.index_url:
            source = index_source(args.index_url, pip_args, timeout=args.timeout)
        else:
            source = export_source(args.export_dir, pip_args)
        source = select(source, args.dists)
        python = args.python or choose_python(t.requires_python for t in source.targets)
    except (VerifyError, NoSuitablePython) as e:
        print(f"{PROG} verify: {e}", file=sys.stderr)
        return 2
    print(f"verifying {len(source.targets)} dists of the {source.description} with {python}, "
          f"{args.jobs} at a time", flush=True)
    try:
        outcomes = verify(
            source, python=python, jobs=args.jobs, timeout=args.timeout, installer=args.installer,
            report=lambda outcome: print(format_outcome(outcome), flush=True),
            announce=lambda installer: print(f"installing with {installer.description}", flush=True),
        )
    except VerifyError as e:
        print(f"{PROG} verify: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("relay verify: interrupted (every process it started has ended)", file=sys.stderr)
        return 130
    failed = [o for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0
