"""Values derived from one dist's plan, kept between runs while pantsd keeps the plan.

The engine memoizes `dist_plan`: in pantsd an export gets the very same DistPlan object for every
target whose plan did not change since the run before (after a one-leaf commit, all but a few). What
is derived from a plan (its check findings, its inputs to the history walk, its Requires-Dist...) is
therefore derived once per plan object, not once per export: an export of 10,000 dists pays for the
few that changed. A value may also depend on a small `context` (the versions its pins name, say): it
is derived again when the context is not equal to the one it was derived in.

Entries live as long as their plan does (a weak reference each): the memory follows the plans Pants
keeps. A plan that is equal but not the same object is derived again: the value is the same, and
deriving costs about what hashing a whole plan to look it up would. No Pants import here.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Generic, Tuple, TypeVar

P = TypeVar("P")
T = TypeVar("T")


class PerPlan(Generic[P, T]):
    """`derive(plan, *context)`, computed once per plan object and context while the plan lives."""

    def __init__(self, derive: Callable[..., T]) -> None:
        self._derive = derive
        self._entries: dict[int, Tuple[weakref.ref[P], Tuple[Any, ...], T]] = {}
        self.derived = 0  # how many values were computed rather than found (tests, debug logs)

    def __call__(self, plan: P, *context: Any) -> T:
        key = id(plan)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is plan and entry[1] == context:
            return entry[2]
        value = self._derive(plan, *context)
        self.derived += 1
        self._entries[key] = (weakref.ref(plan, self._forget(key)), context, value)
        return value

    def _forget(self, key: int) -> Callable[[weakref.ref[P]], None]:
        def forget(dead: weakref.ref[P]) -> None:
            # A newer plan may sit under the same id by now (ids are reused once freed): keep it.
            entry = self._entries.get(key)
            if entry is not None and entry[0] is dead:
                del self._entries[key]

        return forget

    def __len__(self) -> int:
        return len(self._entries)

