"""The engine adapter on the installed Pants (2.17.1: the `Get` half)."""
from __future__ import annotations

import inspect

from pants.engine.rules import Get, MultiGet
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.version import PANTS_SEMVER, Version

from export_dists import engine
from export_dists.dists import DistIdentity, DistIdentityRequest, NamingSettings, dist_identity, rules
from pants.engine.addresses import Address


def test_gates_follow_the_installed_pants() -> None:
    assert engine.PANTS_2_23 is (PANTS_SEMVER >= Version("2.23.0.dev0"))
    assert engine.PANTS_2_32 is (PANTS_SEMVER >= Version("2.32.0.dev0"))


def test_on_pants_before_2_23_a_rule_called_by_name_is_a_get_and_stays_registered() -> None:
    assert not engine.PANTS_2_23
    request = DistIdentityRequest(Address("a"), NamingSettings("monorepo", True, False))
    call = dist_identity(request, **engine.implicitly())
    assert isinstance(call, Get)
    assert call.output_type is DistIdentity and list(call.input_types) == [DistIdentityRequest]
    assert list(call.inputs) == [request]
    # collect_rules() finds the rule on the by-name function: registered exactly once.
    registered = [r for r in rules() if getattr(r, "canonical_name", "").endswith("dist_identity")]
    assert len(registered) == 1 and registered[0].output_type is DistIdentity
    assert engine.concurrently is MultiGet


def test_helpers_are_gets_annotated_with_the_bare_class() -> None:
    # Pants 2.17's rule parser follows a helper only when its return annotation is a class that
    # is Awaitable: the bare `Get`, not `Get[X]`.
    for name in engine.__all__:
        helper = getattr(engine, name)
        if inspect.isfunction(helper) and name not in ("by_name", "implicitly", "concurrently"):
            assert inspect.signature(helper).return_annotation == "Get", name
    got = engine.wrapped_target(WrappedTargetRequest(Address("a"), description_of_origin="test"))
    assert isinstance(got, Get) and got.output_type is WrappedTarget
