"""The target type export-dists adds (`export_dists_environment`) and the fields it adds to the ones it exports."""
from __future__ import annotations

from pants.backend.python.target_types import (
    PythonSourcesGeneratorTarget,
    PythonSourceTarget,
    PythonTestUtilsGeneratorTarget,
)
from pants.core.target_types import ResourcesGeneratorTarget, ResourceTarget
from pants.engine.target import COMMON_TARGET_FIELDS, BoolField, Dependencies, StringField, Target, TriBoolField
from pants.util.strutil import softwrap

EXPORTABLE_TARGET_TYPES = (
    PythonSourcesGeneratorTarget,
    PythonSourceTarget,
    PythonTestUtilsGeneratorTarget,
    ResourcesGeneratorTarget,
    ResourceTarget,
)


class ExportDistNameField(StringField):
    alias = "export_dist_name"
    help = softwrap(
        """
        The dist name `export-dists` gives this target, instead of the one derived from its
        directory (`<namespace>.<directory as dots>`). Must be a valid project name and unique
        after PEP 503 normalization.
        """
    )


class SkipExportDistField(BoolField):
    alias = "skip_export_dist"
    default = False
    help = "If true, `export-dists` writes no dist for this target."


class ExportDistAllowTopLevelField(BoolField):
    alias = "export_dist_allow_top_level"
    default = False
    help = softwrap(
        """
        If true, `export-dists` ships this target's `__init__.py` or `tests` package even where it
        would land at the top of site-packages (the source root is the package directory itself).
        By default such a dist is refused: it would overwrite every other dist's file of the same
        name. Prefer making the directory above the package the source root.
        """
    )


class ExportDistTypedField(TriBoolField):
    alias = "export_dist_typed"
    help = softwrap(
        """
        If true, `export-dists` marks this target's dist as typed (PEP 561): a `py.typed` file
        beside its modules, so that mypy and pyright use its annotations once it is installed. If
        false, never. Unset: as `[export-dists].typed` says (default: not marked).
        """
    )


def target_types_with_fields():
    return [
        target_type.register_plugin_field(field)
        for target_type in EXPORTABLE_TARGET_TYPES
        for field in (ExportDistNameField, SkipExportDistField, ExportDistAllowTopLevelField, ExportDistTypedField)
    ]


class EnvironmentDependenciesField(Dependencies):
    help = softwrap(
        """
        The targets whose dists make up the environment: `python_sources`, `python_source`,
        `resources` or `resource` targets (their first-party dependencies come along), other
        `export_dists_environment` targets (their whole set), and `python_requirement` targets
        (third-party projects the environment installs too). Nothing is inferred.
        """
    )


class ExportDistsEnvironmentTarget(Target):
    alias = "export_dists_environment"
    core_fields = (*COMMON_TARGET_FIELDS, EnvironmentDependenciesField, ExportDistNameField, SkipExportDistField)
    help = softwrap(
        """
        One more dist of the export that stands for a whole set: it ships no files, and its
        Requires-Dist pins `==` every first-party dist of its dependencies' closure (at their
        versions in the export) and lists the union of their third-party requirements, so
        `pip install <its name>` installs the set at one commit with one name. It is named like
        any target (`<namespace>.<directory as dots>[.<name>]`, or `export_dist_name`). Two
        different requirement lines for one third-party project in the set are an error.
        """
    )
