"""The command line's words: every command and option of `export-dists-relay`, with its help."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Callable, TypeVar

from relay.building import build_systems
from relay.building.builders import COLD_EXPORT_COMMAND, WARM_EXPORT_COMMAND
from relay.index.refs import TIP_WAIT_SECONDS
from relay.tools.verify import INSTALLERS
from relay.web.forwarded import PROXY_HEADERS

# The command the wheel installs; help, examples and messages use it.
PROG = "export-dists-relay"

DESCRIPTION = """\
export-dists-relay: a PEP 503 / PEP 691 simple index over monorepo exports, per commit and per branch.

It serves the export directories that `pants export-dists` writes (one per commit, see
docs/design.md) so that pip, uv and pex install monorepo targets by name:

  pip install --index-url http://HOST:8080/main/simple/ monorepo.src.python.a.b
"""

SERVE_EPILOG = """\
routes:
  /<ref>/simple/                 PEP 503 HTML or PEP 691 JSON (by Accept) root index
  /<ref>/simple/<project>/       project page; <ref> = sha, short sha, branch or tag
  /<ref>/<wheel>[.metadata]      files (the pages link them under their commit's sha)
  /<ref>/constraints.txt         every dist of the ref's commit pinned name==version, plus its URL requirements
  /simple/...                    the same for --default-ref
  /  and  /<ref>/                pages for people (a browser): refs, builds, dists, search, install lines
  /<ref>/-/<project>/            a dist's page: install lines, versions along the ref, modules, files
  /metrics                       Prometheus metrics (credentials when auth is on)
  /-/health                      liveness (never needs credentials)
  /-/ready                       readiness: 503 while the store or the builder cannot serve

examples:
  # push mode: CI writes exports into /srv/exports, the relay serves them
  export-dists-relay serve --store /srv/exports --upstream https://pypi.org/simple

  # pull mode: build a commit's export on its first request
  export-dists-relay serve --store /srv/exports --repo /srv/monorepo.git --default-ref main

  # private code: create credentials, then serve with them
  export-dists-relay passwd /srv/relay.auth alice
  export-dists-relay serve --store /srv/exports --auth-file /srv/relay.auth
  pip install --index-url http://alice:PASSWORD@HOST:8080/main/simple/ monorepo.a

  # an export whose dists have URL requirements (pkg @ git+https://...): uv installs them only as
  # constraints, so give the ref's constraints file (its pages show every line with it)
  uv pip install -c http://HOST:8080/main/constraints.txt --index-url http://HOST:8080/main/simple/ monorepo.a

  # move an environment to a newer commit: the monorepo's dists move, third-party ones only if needed
  pip install --upgrade --upgrade-strategy only-if-needed -c http://HOST:8080/<sha>/constraints.txt \\
      --index-url http://HOST:8080/main/simple/ monorepo.a monorepo.b
"""

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?", re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """`20G`, `500M`, `1.5T` or bytes (binary units); 0 means no cap."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use e.g. 500M, 20G or 1T")
    number, unit = float(match.group(1)), match.group(2).upper()
    size = int(number * 1024 ** " KMGT".index(unit or " "))
    return size or None


Number = TypeVar("Number", int, float)


def _number(kind: Callable[[str], Number], *, zero: bool) -> Callable[[str], Number]:
    """An argparse type: a number greater than 0, or (`zero`) 0 or more."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"{text!r} must be {'0 or more' if zero else 'greater than 0'}")
        return value

    return parse


def _positive(kind: Callable[[str], Number]) -> Callable[[str], Number]:
    return _number(kind, zero=False)


def _non_negative(kind: Callable[[str], Number]) -> Callable[[str], Number]:
    return _number(kind, zero=True)


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    # One name however it is started (the wheel's script, the PEX, `python -m relay` in a checkout):
    # the installed command's, which is what every example and message says.
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, formatter_class=formatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve = commands.add_parser(
        "serve", help="serve a store of exports", description=DESCRIPTION, epilog=SERVE_EPILOG,
        formatter_class=formatter,
    )
    where = serve.add_argument_group("what to serve")
    where.add_argument("--store", required=True, metavar="DIR|s3://BUCKET/PREFIX",
                       help="directory whose children are export directories <sha>/ (created if missing), "
                            "or an S3-compatible bucket and prefix that several relays may share "
                            "(credentials and endpoint the standard AWS way: AWS_* variables, "
                            "~/.aws/config, AWS_PROFILE, AWS_ENDPOINT_URL; see docs/deployment.md)")
    where.add_argument("--redirect-files", action="store_true",
                       help="with an s3:// store, answer requests for wheels too large for the memory "
                            "cache with a redirect to a short-lived presigned URL instead of streaming them")
    where.add_argument("--default-ref", default="main", metavar="REF",
                       help="ref served at /simple/ (default: %(default)s)")
    where.add_argument("--upstream", metavar="URL",
                       help="index for names outside the monorepo, e.g. https://pypi.org/simple; such "
                            "requests are redirected there, monorepo names never are (default: 404)")
    where.add_argument("--namespace", action="append", default=[], metavar="NAME",
                       help="a dist namespace (e.g. monorepo) whose names are never sent upstream even "
                            "before an export has them; the exports' own namespaces always count")
    pull = serve.add_argument_group("pull mode (build exports on request)")
    pull.add_argument("--repo", type=Path, metavar="GIT_DIR",
                      help="git repository for resolving refs; with it, a commit without an export "
                           "is built on its first request")
    pull.add_argument("--builder", choices=["warm", "cold"], default="warm",
                      help="warm: each build runs in one long-lived worktree whose Pants daemon stays "
                           "up between builds (a new commit costs about an incremental export); "
                           "cold: a fresh worktree and a fresh Pants per build (default: %(default)s)")
    pull.add_argument("--build-system", choices=build_systems.CHOICES, default=build_systems.AUTO,
                      help="how --repo's commits are built: pants (`pants export-dists ::`), uv "
                           "(export-dists-uv, a uv workspace), or auto: pants where the default ref has a "
                           "pants.toml, uv where its pyproject.toml has [tool.uv.workspace] (default: %(default)s)")
    pull.add_argument("--export-command", metavar="CMD",
                      help="shell command that writes a commit's export, run in the builder's worktree; "
                           "{worktree}, {output_dir} and {sha} are replaced (default, warm: "
                           f"{WARM_EXPORT_COMMAND.replace('%', '%%')}; cold: "
                           f"{COLD_EXPORT_COMMAND.replace('%', '%%')})")
    pull.add_argument("--no-build", action="store_true",
                      help="with --repo, resolve refs with git but never build exports")
    pull.add_argument("--follow", action="append", default=[], metavar="BRANCH",
                      help="also build this branch's new tips as soon as a refresh sees them "
                           "(repeatable; the --default-ref branch is always followed)")
    pull.add_argument("--tip-wait", type=_non_negative(float), default=TIP_WAIT_SECONDS, metavar="SECONDS",
                      help="a branch page whose tip has no export starts (or joins) the tip's build and "
                           "waits this long for it; past that it answers from the branch's newest built "
                           "commit (X-Relay-Building names the tip) while the tip builds "
                           "(default: %(default)s, under pip's 15 s read timeout; 0: answer at once)")
    pull.add_argument("--wait-for-tip", action="store_true",
                      help="a branch page waits for its tip's build however long it takes (see --tip-wait)")
    pull.add_argument("--build-unreachable", action="store_true",
                      help="build any commit of the repository, not only those on a branch or tag")
    pull.add_argument("--max-builds", type=_positive(int), default=1, metavar="N",
                      help="builds that may run at once, each with its own builder (default: %(default)s)")
    pull.add_argument("--max-queued", type=_positive(int), default=16, metavar="N",
                      help="commits that may wait to be built; beyond that a request answers 503 with "
                           "Retry-After (default: %(default)s)")
    pull.add_argument("--build-timeout", type=_positive(float), default=1800.0, metavar="SECONDS",
                      help="a build running longer is killed and answers 504 (default: %(default)s)")
    pull.add_argument("--build-lease", type=_positive(float), default=30.0, metavar="SECONDS",
                      help="with an s3:// store shared by replicas: the replica building a commit "
                           "renews its lease on the build; one that stops (it died) for this long is "
                           "replaced by another (default: %(default)s)")
    pull.add_argument("--builder-max-builds", type=_positive(int), default=50, metavar="N",
                      help="a warm builder's Pants daemon is replaced after N builds, by one warmed in "
                           "the background (default: %(default)s)")
    pull.add_argument("--builder-max-memory", type=parse_size, default=4 * 1024**3, metavar="SIZE",
                      help="a warm builder's Pants daemon memory limit ([GLOBAL].pantsd_max_memory_usage); "
                           "beyond 3/4 of it the daemon is replaced by one warmed in the background, "
                           "beyond it in the next build (default: 4G, as Pants)")
    pull.add_argument("--refresh-interval", type=_positive(float), default=60.0, metavar="SECONDS",
                      help="how often branches are re-resolved (and fetched when the repository "
                           "has a remote) (default: %(default)s)")
    pull.add_argument("--work-dir", type=Path, metavar="DIR",
                      help="where worktrees, build logs and build records go (default: a directory "
                           "per store under the system temp directory)")
    keep = serve.add_argument_group("eviction")
    keep.add_argument("--max-age-days", type=float, default=30.0, metavar="DAYS",
                      help="evict exports unused for this long; 0 keeps them (default: %(default)s)")
    keep.add_argument("--max-size", type=parse_size, default=None, metavar="SIZE",
                      help="evict least recently used exports beyond this total, e.g. 20G "
                           "(default: no cap)")
    keep.add_argument("--memory-cache", type=parse_size, default=128 * 1024 * 1024, metavar="SIZE",
                      help="keep up to SIZE of small wheels and .metadata files in memory (files "
                           "are immutable under their sha256); 0 reads every file from disk "
                           "(default: 128M)")
    net = serve.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    net.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    net.add_argument("--workers", type=_positive(int), default=1, metavar="N",
                     help="serve from N processes sharing one listening socket, e.g. one per core; "
                          "pull-mode builds are still one per commit (default: %(default)s)")
    net.add_argument("--auth-file", type=Path, metavar="FILE",
                     help="require credentials listed in FILE (see `export-dists-relay passwd` and "
                          "`export-dists-relay token`); /-/health and /-/ready stay open")
    proxy = serve.add_argument_group("behind a proxy (TLS, a path prefix)")
    proxy.add_argument("--public-url", metavar="URL",
                       help="the URL clients reach this relay by, e.g. https://pypi.example.com/relay/: "
                            "every absolute URL the relay prints (the lines to copy on its pages) starts "
                            "with it (default: from the request, and from --trusted-proxy headers)")
    proxy.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR[/BITS]",
                       help="a proxy (address or network, repeatable or comma-separated) whose forwarded "
                            "headers are believed: the client's address (rate limits, the access log) "
                            "and, without --public-url, its scheme, host, port and path prefix. Headers "
                            "from any other peer are ignored (default: none)")
    proxy.add_argument("--proxy-headers", choices=PROXY_HEADERS, default="x-forwarded",
                       help="which headers the trusted proxies set: x-forwarded (X-Forwarded-For, -Proto, "
                            "-Host, -Port, -Prefix: nginx, HAProxy, AWS ALB, Traefik, ingress-nginx) or "
                            "forwarded (RFC 7239, with X-Forwarded-Prefix); the other kind is never read "
                            "(default: %(default)s)")
    net.add_argument("--idle-timeout", type=_positive(float), default=15.0, metavar="SECONDS",
                     help="close a connection that sends no complete request for this long: an idle "
                          "kept-alive one, or a silent or slow client (default: %(default)s)")
    net.add_argument("--max-connections", type=_positive(int), default=None, metavar="N",
                     help="open connections per worker; beyond them a new one is answered 503 "
                          "(default: 1000, or less if the file-descriptor limit leaves less room)")
    net.add_argument("--branch-max-age", type=int, default=60, metavar="SECONDS",
                     help="Cache-Control max-age of branch and tag pages (sha pages are immutable) "
                          "(default: %(default)s)")
    net.add_argument("--shutdown-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="on SIGTERM/SIGINT, how long in-flight requests may take (default: %(default)s)")
    net.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                     help="(default: %(default)s)")
    net.add_argument("--no-access-log", action="store_true", help="no line per request")

    passwd = commands.add_parser(
        "passwd", help="add or replace a user's password in an auth file",
        description="Add or replace USER's password in FILE (created with mode 600). The file "
                    "holds a salted PBKDF2-SHA256 hash, never the password.",
    )
    passwd.add_argument("file", type=Path, metavar="FILE")
    passwd.add_argument("user", metavar="USER")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input instead of prompting")

    token = commands.add_parser(
        "token", help="create an access token in an auth file",
        description="Create a random token for NAME, store its SHA-256 in FILE and print the token "
                    "once. Clients send it as `Authorization: Bearer TOKEN`, or as the password of "
                    "user __token__ (or NAME) in basic auth: https://__token__:TOKEN@HOST/main/simple/",
    )
    token.add_argument("file", type=Path, metavar="FILE")
    token.add_argument("name", metavar="NAME")

    check = commands.add_parser(
        "check", help="list the exports of a store and why any are skipped",
        description="List every export the relay would serve from DIR, and every entry it would skip "
                    "with the reason. Exits 1 if any entry is skipped.",
    )
    check.add_argument("store", metavar="DIR|s3://BUCKET/PREFIX")

    publish = commands.add_parser(
        "publish", help="upload an export directory to a store (for CI, after export-dists)",
        description="Upload EXPORT_DIR (one <sha>/ directory that `pants export-dists` wrote) to the "
                    "store: every wheel and .metadata file first, the manifest last, so relays never "
                    "see half an export. Publishing the same export again, or from two machines at "
                    "once, is safe: the first writer wins and identical bytes are a no-op; different "
                    "bytes under the same commit are an error (exit 1).",
        epilog="example (CI):\n"
               "  pants export-dists --export-dists-output-dir=dist/exports ::\n"
               "  export-dists-relay publish dist/exports/$(git rev-parse HEAD) --store s3://BUCKET/relay\n",
        formatter_class=formatter,
    )
    publish.add_argument("export_dir", type=Path, metavar="EXPORT_DIR")
    publish.add_argument("--store", required=True, metavar="DIR|s3://BUCKET/PREFIX")

    verify = commands.add_parser(
        "verify", help="install each dist alone into a fresh venv and import it",
        description="Does each wheel work without the monorepo? For every dist of an export (or of a "
                    "relay index), create a fresh virtualenv, `pip install` only that dist, then import "
                    "every module it ships and check its other files are installed. Prints one line "
                    "per dist (ok / FAILED and why) and exits 1 if any failed. It installs with uv "
                    "when there is one (the `uv` package beside the relay, or on the PATH), else with "
                    "a current pip (>= 25.2) in a tool venv of its own: the pip a Python bundles can "
                    "stall for many minutes on a large dependency cycle between dists. Its first "
                    "lines say which. pip and uv run with your configuration, so third-party "
                    "requirements come from your usual index. A step that runs past --timeout is "
                    "ended with every process it started.",
        epilog="examples:\n"
               "  export-dists-relay verify dist/export-dists/<sha>\n"
               "  export-dists-relay verify --index-url http://HOST:8080/main/simple/ --dist monorepo.src.python.a.b\n",
        formatter_class=formatter,
    )
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("export_dir", nargs="?", type=Path, metavar="EXPORT_DIR",
                        help="an export directory <out>/<sha>/ (dists are found with --find-links)")
    source.add_argument("--index-url", metavar="URL",
                        help="a relay ref's simple index, e.g. http://HOST:8080/main/simple/ "
                             "(credentials in the URL work)")
    verify.add_argument("--dist", action="append", default=[], metavar="NAME", dest="dists",
                        help="check only this dist (repeatable; default: every dist)")
    verify.add_argument("--extra-index-url", action="append", default=[], metavar="URL",
                        help="passed to pip, e.g. for third-party requirements (repeatable)")
    verify.add_argument("--python", default=None, metavar="PYTHON",
                        help="interpreter the venvs are made with (default: for an export directory, "
                             "the first one that every checked dist's Requires-Python admits: this one, "
                             "then python3.X on the PATH, then pyenv's; for --index-url, this one)")
    verify.add_argument("--jobs", type=_positive(int), default=2, metavar="N",
                        help="dists checked at once (default: %(default)s)")
    verify.add_argument("--timeout", type=_positive(float), default=600.0, metavar="SECONDS",
                        help="limit for each step (venv, install, import) of one dist (default: %(default)s)")
    verify.add_argument("--installer", choices=INSTALLERS, default="auto",
                        help="auto: uv if there is one, else pip; uv; or pip (upgraded to >= 25.2 in a "
                             "tool venv, the bundled one if that fails) (default: %(default)s)")
    return parser
