"""Tests for dist names: address -> `<namespace>.<directory as dots>[.<name>]`."""
from __future__ import annotations

import pytest

from export_dists_core.naming import InvalidDistName, dist_name_for, is_valid_dist_name, normalize


@pytest.mark.parametrize(
    "spec_path, target_name, expected",
    [
        # The directory's default name: no suffix.
        ("src/python/a/b", "b", "monorepo.src.python.a.b"),
        # Any other name: a suffix for it.
        ("src/python/a/b", "extra", "monorepo.src.python.a.b.extra"),
        ("libs/py", "py", "monorepo.libs.py"),
        ("libs/py", "lib", "monorepo.libs.py.lib"),
        # The build root is the namespace itself.
        ("", "", "monorepo"),
        ("", "root", "monorepo.root"),
    ],
)
def test_dist_name_from_directory(spec_path: str, target_name: str, expected: str) -> None:
    assert dist_name_for(namespace="monorepo", spec_path=spec_path, target_name=target_name) == expected


def test_parametrized_target_gets_its_parameter_values() -> None:
    assert (
        dist_name_for(namespace="m", spec_path="a/b", target_name="b", parameters={"resolve": "py2"})
        == "m.a.b.py2"
    )
    assert (
        dist_name_for(namespace="m", spec_path="a/b", target_name="x", parameters={"z": "2", "a": "1"})
        == "m.a.b.x.1.2"
    )


def test_namespace_is_the_first_part() -> None:
    assert dist_name_for(namespace="acme", spec_path="a/b", target_name="b") == "acme.a.b"


@pytest.mark.parametrize(
    "spec_path, target_name, source_root, expected",
    [
        ("src/python/a/b", "b", "src/python", "monorepo.a.b"),
        ("src/python/a/b", "x", "src/python", "monorepo.a.b.x"),
        ("src/python/a/b", "b", "/src/python/", "monorepo.a.b"),
        # The source root itself: the namespace, and the default name of its own directory.
        ("src/python", "python", "src/python", "monorepo"),
        # A root of "." (the build root) strips nothing.
        ("src/python/a/b", "b", ".", "monorepo.src.python.a.b"),
        ("src/python/a/b", "b", "", "monorepo.src.python.a.b"),
        # A source root that is only a string prefix of the path is not a parent directory.
        ("src/pythonic/a", "a", "src/python", "monorepo.src.pythonic.a"),
    ],
)
def test_strip_source_roots(
    spec_path: str, target_name: str, source_root: str, expected: str
) -> None:
    assert (
        dist_name_for(
            namespace="monorepo", spec_path=spec_path, target_name=target_name, source_root=source_root
        )
        == expected
    )


@pytest.mark.parametrize(
    "namespace, spec_path, target_name",
    [
        ("monorepo", "src/with space", "with space"),
        ("monorepo", "src/a", "bad!name"),
        ("monorepo", "src/a", "trailing-"),
        ("", "", ""),
        ("-lead", "a", "a"),
    ],
)
def test_invalid_names_raise(namespace: str, spec_path: str, target_name: str) -> None:
    with pytest.raises(InvalidDistName):
        dist_name_for(namespace=namespace, spec_path=spec_path, target_name=target_name)


@pytest.mark.parametrize(
    "name, valid",
    [("a", True), ("a.b-c_d", True), ("A1", True), ("a.", False), (".a", False), ("a b", False), ("", False)],
)
def test_is_valid_dist_name(name: str, valid: bool) -> None:
    assert is_valid_dist_name(name) is valid


@pytest.mark.parametrize(
    "name, expected",
    [
        ("monorepo.src.python.a.b", "monorepo-src-python-a-b"),
        ("Monorepo_Src__Python", "monorepo-src-python"),
        ("a-_.-b", "a-b"),
        ("requests", "requests"),
    ],
)
def test_normalize_is_pep_503(name: str, expected: str) -> None:
    assert normalize(name) == expected


def test_distinct_targets_can_normalize_to_one_project() -> None:
    # `a/b_c` and `a/b:c` are different names but one project: the collision the goal refuses.
    underscored = dist_name_for(namespace="monorepo", spec_path="a/b_c", target_name="b_c")
    suffixed = dist_name_for(namespace="monorepo", spec_path="a/b", target_name="c")
    assert (underscored, suffixed) == ("monorepo.a.b_c", "monorepo.a.b.c")
    assert normalize(underscored) == normalize(suffixed) == "monorepo-a-b-c"
