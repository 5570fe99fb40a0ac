"""Fields export-dists adds to the target types it exports."""
from __future__ import annotations

from pants.backend.python.target_types import (
    PythonSourcesGeneratorTarget,
    PythonSourceTarget,
    PythonTestUtilsGeneratorTarget,
)
from pants.core.target_types import ResourcesGeneratorTarget, ResourceTarget
from pants.engine.target import BoolField, StringField
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


def target_types_with_fields():
    return [
        target_type.register_plugin_field(field)
        for target_type in EXPORTABLE_TARGET_TYPES
        for field in (ExportDistNameField, SkipExportDistField, ExportDistAllowTopLevelField)
    ]
