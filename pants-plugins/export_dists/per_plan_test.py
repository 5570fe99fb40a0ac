from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass

from export_dists.per_plan import PerPlan


@dataclass(frozen=True)
class Plan:
    name: str


def test_a_value_is_derived_once_per_plan_object_and_context() -> None:
    seen: list[tuple[str, int]] = []

    def derive(plan: Plan, pin: int) -> str:
        seen.append((plan.name, pin))
        return f"{plan.name}=={pin}"

    memo: PerPlan[Plan, str] = PerPlan(derive)
    a, b = Plan("a"), Plan("b")
    assert [memo(a, 1), memo(b, 1), memo(a, 1), memo(b, 1)] == ["a==1", "b==1", "a==1", "b==1"]
    assert seen == [("a", 1), ("b", 1)]
    # Another context: derived again, and kept in its place.
    assert memo(a, 2) == "a==2"
    assert memo(a, 2) == "a==2"
    assert seen == [("a", 1), ("b", 1), ("a", 2)]
    # An equal plan that is another object is derived again (no hashing of whole plans).
    assert memo(Plan("a"), 2) == "a==2"
    assert memo.derived == 4


def test_entries_live_as_long_as_their_plans() -> None:
    memo: PerPlan[Plan, str] = PerPlan(lambda plan: plan.name.upper())
    plans = [Plan(str(n)) for n in range(100)]
    assert [memo(p) for p in plans] == [str(n) for n in range(100)]
    assert len(memo) == 100
    del plans[50:]
    gc.collect()
    assert len(memo) == 50
    assert [memo(p) for p in plans] == [str(n) for n in range(50)]
    assert memo.derived == 100


def test_a_dead_plans_callback_leaves_a_newer_plan_under_the_same_id() -> None:
    # Ids are reused once an object is freed: the callback of a plan that died after another took
    # its id must not drop the newer plan's entry.
    memo: PerPlan[Plan, str] = PerPlan(lambda plan: plan.name)
    new = Plan("new")
    assert memo(new) == "new"
    dead = weakref.ref(Plan("dead"))
    memo._forget(id(new))(dead)
    assert memo(new) == "new"
    assert memo.derived == 1
    current = memo._entries[id(new)][0]
    memo._forget(id(new))(current)
    assert len(memo) == 0
