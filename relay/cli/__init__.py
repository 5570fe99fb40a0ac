"""The command line, `export-dists-relay`: serve, passwd, token, check, publish, verify.

The parser (parser.py) says the words; serve.py is the composition root, the one place that makes
and wires the store, refs, builder and application; workers.py forks and watches `--workers`;
admin.py holds the other commands.
"""

from __future__ import annotations

import argparse
from typing import Callable, Mapping, Sequence

from relay.cli.admin import check_command, passwd_command, publish_command, token_command, verify_command
from relay.cli.parser import PROG, build_parser
from relay.cli.serve import proxy_notes, serve_command

COMMANDS: Mapping[str, Callable[[argparse.Namespace], int]] = {
    "serve": serve_command,
    "passwd": passwd_command,
    "token": token_command,
    "check": check_command,
    "publish": publish_command,
    "verify": verify_command,
}

__all__ = ["COMMANDS", "PROG", "build_parser", "main", "proxy_notes"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(COMMANDS[args.command](args))
