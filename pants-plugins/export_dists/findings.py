"""The export's warnings: one per cause with a count, listed in full once per process."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Iterable

logger = logging.getLogger(__name__)

# How many instances a warning lists unless [export-dists].warning_examples says otherwise.
DEFAULT_EXAMPLES = 5


@dataclass(frozen=True)
class Cause:
    """Why something is wrong, and what to do, said once however many instances there are."""

    title: str  # a plural noun phrase read after the count: "dependency cycles between dists"
    fix: str
    one: str = ""  # the title after a count of 1, when it differs: "dependency cycle between dists"


@dataclass(frozen=True)
class Finding:
    """One instance of a cause: a dist, an edge, a path, in one line."""

    cause: Cause
    detail: str


# What each cause listed in the previous export of this process (pantsd keeps it across runs): the
# next commit's export says a cause whose instances did not change in one line. Replaced by every
# report, so it holds one export's causes at most.
_SAID: dict[str, frozenset[str]] = {}
_LOCK = threading.Lock()


def forget() -> None:
    """Forget what was said (tests: each starts as a fresh process would)."""
    with _LOCK:
        _SAID.clear()


def _count(n: int, cause: Cause) -> str:
    return f"{n} {cause.one if n == 1 and cause.one else cause.title}"


def render(cause: Cause, details: list[str], before: frozenset[str] | None, examples: int) -> str:
    """The one warning for `cause`: the count, the instances (new ones only when some were said
    before), and the fix. `examples` < 0 lists every instance."""
    if before is not None and set(details) == before:
        return (
            f"{_count(len(details), cause)}: the same as in the previous export of this "
            "process, which listed them."
        )
    new = [d for d in details if before is None or d not in before]
    header = _count(len(details), cause)
    if before is not None:
        gone = len(before - set(details))
        header += f" ({len(new)} new since the previous export of this process" + (
            f", {gone} gone)" if gone else ")"
        )
    shown = new if examples < 0 else new[:examples]
    lines = [f"{header}:", *(f"  - {d}" for d in shown)]
    if len(shown) < len(new):
        lines.append(
            f"  ... and {len(new) - len(shown)} more (--export-dists-warning-examples=-1 lists every one)"
        )
    lines.append(cause.fix)
    return "\n".join(lines)


def report(findings: Iterable[Finding], examples: int = DEFAULT_EXAMPLES) -> tuple[str, ...]:
    """Log one warning per cause, in the order causes first appear; return the messages."""
    by_cause: dict[Cause, list[str]] = {}
    for finding in findings:
        details = by_cause.setdefault(finding.cause, [])
        if finding.detail not in details:
            details.append(finding.detail)
    with _LOCK:
        messages = [render(cause, details, _SAID.get(cause.title), examples) for cause, details in by_cause.items()]
        _SAID.clear()
        _SAID.update((cause.title, frozenset(details)) for cause, details in by_cause.items())
    for message in messages:
        logger.warning(message)
    return tuple(messages)
