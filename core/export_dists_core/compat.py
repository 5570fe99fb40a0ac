"""`packaging` as Pants ships it (21.3 up to 2.25, 24.2, 25.0, then 26.0 from 2.32), imported quietly."""
from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # packaging 21.3 calls pyparsing's camelCase API, which pyparsing 3.1+ flags on import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

__all__ = [
    "InvalidRequirement",
    "InvalidSpecifier",
    "InvalidVersion",
    "Marker",
    "Requirement",
    "Specifier",
    "SpecifierSet",
    "UndefinedComparison",
    "UndefinedEnvironmentName",
    "Version",
    "canonicalize_name",
]

# Parsing markers at run time goes through the same deprecated pyparsing calls.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"packaging(\..*)?$")
