"""The Pants versions the plugin loads in, and the message outside them."""
from __future__ import annotations

import pytest

from export_dists.pants_support import (
    ALLOW_ANY_PANTS,
    UnsupportedPantsVersion,
    check_pants_version,
    unsupported_pants_message,
)


@pytest.mark.parametrize("version", ["2.17.1", "2.18.3", "2.25.3", "2.31.0", "2.32.1", "2.33.0", "2.34.0.dev3", "2.33.1rc0"])
def test_supported(version: str) -> None:
    assert unsupported_pants_message(version) is None
    assert check_pants_version(version, {}) is None


def test_older_pants_is_refused_with_the_range_and_the_fix() -> None:
    with pytest.raises(UnsupportedPantsVersion) as caught:
        check_pants_version("2.16.1", {})
    message = str(caught.value)
    assert "Pants 2.16.1" in message and ">=2.17.1" in message and "Upgrade Pants" in message


def test_newer_pants_is_refused_unless_allowed() -> None:
    with pytest.raises(UnsupportedPantsVersion, match=ALLOW_ANY_PANTS):
        check_pants_version("2.35.0", {})
    with pytest.raises(UnsupportedPantsVersion):
        check_pants_version("2.35.0.dev0", {})
    warning = check_pants_version("2.35.0", {ALLOW_ANY_PANTS: "1"})
    assert warning is not None and "2.35.0" in warning


def test_not_a_version() -> None:
    assert "not a PEP 440 version" in (unsupported_pants_message("two") or "")


def test_the_installed_pants_loads_the_backend() -> None:
    from pants.version import VERSION

    import export_dists.register as register

    assert check_pants_version(VERSION, {}) is None
    assert register.rules() and register.target_types()
