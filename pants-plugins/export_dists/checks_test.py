"""The checks over every planned dist, run as pantsd runs them: again on plans of which a few changed."""
from __future__ import annotations

from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST

from export_dists.checks import check_plans
from export_dists.cycles import dist_cycles
from export_dists.dists import DependencyEdge, DistIdentity, DistKind, DistPlan, EdgeKind, FirstPartyDependency, OwnedFile
from export_dists.subsystem import UnexportableDependencies


def _address(name: str) -> Address:
    return Address(f"src/python/{name}", target_name=name)


def _plan(name: str, wheel_paths: tuple[str, ...], depends_on: tuple[str, ...] = ()) -> DistPlan:
    address = _address(name)
    return DistPlan(
        identity=DistIdentity(address, "python_sources", f"monorepo.{name}", DistKind.PYTHON),
        files=tuple(OwnedFile(f"src/python/{p}", p, address) for p in wheel_paths),
        digest=EMPTY_DIGEST,
        first_party=tuple(
            FirstPartyDependency(
                DistIdentity(_address(d), "python_sources", f"monorepo.{d}", DistKind.PYTHON),
                (DependencyEdge(address, _address(d), EdgeKind.INFERRED),),
            )
            for d in depends_on
        ),
        third_party=(),
        not_exportable=(),
        excluded=(),
        requires_python=None,
    )


def _findings(plans: list[DistPlan]) -> list[str]:
    found = check_plans({p.identity.address: p for p in plans}, UnexportableDependencies.WARN)
    return [f"{f.cause.one}: {f.detail}" for f in found]


def test_a_changed_plan_is_checked_again_and_unchanged_ones_keep_their_findings() -> None:
    a = _plan("a", ("a/__init__.py", "a/x.py"), depends_on=("b",))
    b = _plan("b", ("b/y.py", "b/v3.5/z.py"), depends_on=("a",))
    c = _plan("c", ("c/w.py",))
    first = _findings([a, b, c])
    assert any("v3.5" in f for f in first)
    assert any("dependency cycle" in f for f in first)
    assert not any("a/__init__.py" in f for f in first)
    # The next export: the same objects for a and b, a new plan for c (its files changed).
    c2 = _plan("c", ("c/w.py", "a/inside.py"))
    second = _findings([a, b, c2])
    assert any("a/__init__.py" in f and "monorepo.c" in f for f in second)
    assert [f for f in second if "a/__init__.py" not in f] == first
    # Then the cycle goes (b drops its dependency on a): the graph is condensed again.
    b2 = _plan("b", ("b/y.py", "b/v3.5/z.py"))
    assert dist_cycles({p.identity.address: p for p in [a, b2, c2]}) == ()
    third = _findings([a, b2, c2])
    assert not any("dependency cycle" in f for f in third)
    assert any("v3.5" in f for f in third)
