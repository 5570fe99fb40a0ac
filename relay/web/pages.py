"""The pages for people: `/` (refs, exports, builds) and `/<ref>/` (its dists, how to install them)."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence
from urllib.parse import quote

from aiohttp import web

from relay.building.log import BuildLog
from relay.contract import Export
from relay.index.refs import RefError, Refs
from relay.storage.store import Store

CONTENT_TYPE = "text/html; charset=utf-8"
# Failed builds shown with the end of their log, and how many of its lines.
SHOWN_FAILURES = 5
SHOWN_LOG_LINES = 15


@dataclass(frozen=True)
class RefRow:
    """One line of the refs table: a branch or tag and the export it shows (None: none in the store)."""

    name: str
    kind: str  # "branch", "tag" or "default"
    sha: str | None
    export: Export | None


@dataclass(frozen=True)
class Context:
    """What every page needs from the application, read once per request."""

    store: Store
    refs: Refs
    default_ref: str
    builds: BuildLog | None
    auth: bool


def e(value: object) -> str:
    """Escape any value for HTML text and attribute values (quotes included)."""
    return html.escape(str(value), quote=True)


def ref_url(base: str, ref: str) -> str:
    return f"{base}{quote(ref, safe='/')}/"


def size_text(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    return f"{size} B"


def age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# Refs.


def _newest(exports: Iterable[Export]) -> Export | None:
    ordered = sorted(exports, key=lambda x: (x.count, x.commit_time), reverse=True)
    return ordered[0] if ordered else None


async def ref_rows(context: Context) -> list[RefRow]:
    """The branches and tags the relay serves: from git with --repo (the commits resolution serves,
    read by Refs, the one reader of the repository's refs), else from the manifests."""
    stored = {key: s.export for key, s in context.store.exports().items()}
    clean = [x for x in stored.values() if not x.dirty]
    rows: list[RefRow] = []
    git = context.refs.git
    if git is not None:
        for ref in await context.refs.listing():
            rows.append(RefRow(name=ref.name, kind=ref.kind, sha=ref.sha, export=stored.get(ref.sha)))
    else:
        branches = sorted({b for x in clean for b in x.branches})
        tags = sorted({t for x in clean for t in x.tags})
        for name in branches:
            tip = _newest(x for x in clean if name in x.branches)
            rows.append(RefRow(name=name, kind="branch", sha=tip.sha if tip else None, export=tip))
        for name in tags:
            tip = _newest(x for x in clean if name in x.tags)
            rows.append(RefRow(name=name, kind="tag", sha=tip.sha if tip else None, export=tip))
    if not any(r.name == context.default_ref for r in rows):
        rows.insert(0, RefRow(name=context.default_ref, kind="default", sha=None, export=None))
    rows.sort(key=lambda r: (r.name != context.default_ref, r.kind != "branch", r.name))
    return rows


# Page parts.

_STYLE = """
:root { color-scheme: light dark; --muted: #6a737d; --line: #d0d7de; --code: #f3f4f6; --accent: #0b62c4; }
@media (prefers-color-scheme: dark) { :root { --muted: #9aa4ae; --line: #3a4048; --code: #22272e; --accent: #5aa2f0; } }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 1.2rem 1.5rem 3rem; }
h1 { font-size: 1.45rem; margin: 0.2rem 0 0.3rem; } h2 { font-size: 1.1rem; margin: 1.6rem 0 0.5rem; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
.muted, .muted a { color: var(--muted); } nav { font-size: 0.9rem; margin-bottom: 0.6rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
th, td { text-align: left; vertical-align: top; padding: 0.35rem 0.6rem 0.35rem 0; border-bottom: 1px solid var(--line); }
th { font-weight: 600; white-space: nowrap; } td.num { text-align: right; white-space: nowrap; }
code, pre { font: 0.86rem/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { background: var(--code); padding: 0.05rem 0.3rem; border-radius: 4px; }
pre { background: var(--code); padding: 0.6rem 0.8rem; border-radius: 6px; overflow-x: auto; margin: 0.3rem 0; }
pre.copy { white-space: pre-wrap; word-break: break-all; user-select: all; }
ul.reqs { margin: 0; padding-left: 1rem; } ul.reqs li { font-size: 0.85rem; } td.wrap { overflow-wrap: anywhere; }
input[type=search] { font: inherit; width: min(32rem, 100%); padding: 0.4rem 0.6rem; border: 1px solid var(--line);
                     border-radius: 6px; background: transparent; color: inherit; }
.kind { font-size: 0.75rem; border: 1px solid var(--line); border-radius: 999px; padding: 0 0.45rem; color: var(--muted); }
.failed { border-left: 3px solid #d1242f; padding-left: 0.7rem; margin: 0.6rem 0; }
"""

def _document(title: str, body: Sequence[str], script: str = "") -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="noindex">',
        f"<title>{e(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        *body,
    ]
    if script:
        parts.append(f"<script>{script}</script>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _refs_table(rows: Sequence[RefRow], base: str) -> list[str]:
    if not rows:
        return ['<p class="muted">No refs yet: no export is in the store.</p>']
    out = [
        "<table>",
        "<thead><tr><th>ref</th><th>commit</th><th>version</th><th class=num>dists</th>"
        "<th>committed</th></tr></thead>",
        "<tbody>",
    ]
    for row in rows:
        kind = "default ref" if row.kind == "default" else row.kind
        commit = "" if row.sha is None else f'<a href="{e(ref_url(base, row.sha))}"><code>{e(row.sha[:12])}</code></a>'
        if row.export is None:
            version, dists, when = '<span class="muted">not exported yet</span>', "", ""
        else:
            version = f"<code>{e(row.export.version)}</code>"
            dists = e(len(row.export.dists))
            when = e(row.export.commit_time)
        out.append(
            f'<tr><td><a href="{e(ref_url(base, row.name))}">{e(row.name)}</a> <span class="kind">{e(kind)}</span></td>'
            f"<td>{commit}</td><td>{version}</td><td class=num>{dists}</td><td>{when}</td></tr>"
        )
    out += ["</tbody>", "</table>"]
    return out


def _exports_table(context: Context, base: str) -> list[str]:
    stored = sorted(context.store.exports().values(), key=lambda s: (s.export.count, s.export.commit_time), reverse=True)
    if not stored:
        return ['<p class="muted">The store holds no export.</p>']
    out = [
        "<table>",
        "<thead><tr><th>export</th><th>version</th><th class=num>dists</th><th class=num>size</th>"
        "<th>branches and tags</th><th>committed</th></tr></thead>",
        "<tbody>",
    ]
    for s in stored:
        x = s.export
        names = ", ".join(e(n) for n in (*x.branches, *x.tags)) or '<span class="muted">-</span>'
        dirty = ' <span class="kind">dirty</span>' if x.dirty else ""
        out.append(
            f'<tr><td><a href="{e(ref_url(base, x.key))}"><code>{e(x.sha[:12])}</code></a>{dirty}</td>'
            f"<td><code>{e(x.version)}</code></td><td class=num>{e(len(x.dists))}</td>"
            f"<td class=num>{e(size_text(s.size))}</td><td>{names}</td><td>{e(x.commit_time)}</td></tr>"
        )
    out += ["</tbody>", "</table>"]
    return out


def _builds(builds: BuildLog | None, base: str) -> list[str]:
    if builds is None:
        return []
    now = time.time()
    out = ["<h2>Builds</h2>"]
    active = [("building", sha, t) for sha, t in builds.running.items()]
    active += [("queued", sha, t) for sha, t in builds.queued.items()]
    if active:
        out.append("<table><thead><tr><th>commit</th><th>state</th><th>for</th></tr></thead><tbody>")
        for state, sha, since in active:
            out.append(
                f'<tr><td><code>{e(sha[:12])}</code></td><td>{e(state)}</td><td>{e(age_text(now - since))}</td></tr>'
            )
        out.append("</tbody></table>")
    else:
        out.append('<p class="muted">Nothing is building.</p>')
    for failure in list(builds.failures)[:SHOWN_FAILURES]:
        lines = failure.message.splitlines()
        head, tail = (lines[0] if lines else ""), lines[1:][-SHOWN_LOG_LINES:]
        out.append(
            f'<div class="failed"><p><b>failed</b> <code>{e(failure.sha[:12])}</code> '
            f"{e(age_text(now - failure.finished))} ago, after {e(age_text(failure.seconds))}: {e(head)}</p>"
            f"<pre>{e(chr(10).join(tail))}</pre></div>"
        )
    return out


# Pages.


def home_page(context: Context, rows: Sequence[RefRow]) -> str:
    base = ""
    body = [
        "<h1>export-dists relay</h1>",
        '<p class="muted">Monorepo targets as pip-installable dists, per commit and per branch. '
        f'Package indexes: <a href="{e(ref_url(base, context.default_ref))}simple/">'
        f"<code>/{e(context.default_ref)}/simple/</code></a> and <code>/&lt;ref&gt;/simple/</code>.</p>",
        "<h2>Refs</h2>",
        *_refs_table(rows, base),
        *_builds(context.builds, base),
        "<h2>Exports in the store</h2>",
        *_exports_table(context, base),
    ]
    return _document("export-dists relay", body)


def not_found_page(context: Context, ref: str, message: str, rows: Sequence[RefRow], base: str) -> str:
    body = [
        f'<nav><a href="{e(base)}">all refs</a></nav>',
        f"<h1>No ref {e(ref)} here</h1>",
        f"<p>{e(message)}</p>",
        "<h2>Refs this relay serves</h2>",
        *_refs_table(rows, base),
    ]
    return _document(f"{ref}: not found - export-dists relay", body)


def error_page(ref: str, message: str, base: str, title: str | None = None) -> str:
    """A ref that exists but cannot be shown now (a failed build, a git error), or a dist it lacks."""
    body = [
        f'<nav><a href="{e(base)}">all refs</a> / <a href="{e(base)}{e(quote(ref, safe="/"))}/">{e(ref)}</a></nav>',
        f"<h1>{e(title or ref)}</h1>",
        f'<pre class="copy">{e(message)}</pre>',
    ]
    return _document(f"{title or ref} - export-dists relay", body)


def respond(text: str | bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=text if isinstance(text, bytes) else text.encode(),
        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store", "Vary": "Authorization", **(headers or {})},
    )


async def not_found(context: Context, ref: str, error: RefError, base: str) -> web.Response:
    if error.status != 404:
        return respond(error_page(ref, error.message, base), status=error.status)
    rows = await ref_rows(context)
    return respond(not_found_page(context, ref, error.message, rows, base), status=404)
