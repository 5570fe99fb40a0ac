"""Options of the export-dists goal (scope `[export-dists]`)."""
from __future__ import annotations

from enum import Enum

from pants.engine.goal import GoalSubsystem
from pants.option.option_types import BoolOption, DictOption, EnumOption, IntOption, StrListOption, StrOption
from pants.util.strutil import softwrap

from export_dists.findings import DEFAULT_EXAMPLES


class ThirdPartyPins(Enum):
    AS_WRITTEN = "as-written"
    LOCKFILE = "lockfile"


class VersionScheme(Enum):
    CONTENT = "content"
    COMMIT = "commit"


class UnexportableDependencies(Enum):
    WARN = "warn"
    ERROR = "error"


class ExportDistsSubsystem(GoalSubsystem):
    name = "export-dists"
    help = softwrap(
        """
        Write one intransitive wheel per exportable target (python_sources, python_source,
        resources, resource), named after its directory and pinned `==` to the versions of its
        first-party dependencies (see `version_scheme`), plus manifest.json and a static simple/ index,
        into `<output_dir>/<commit sha>/`. Install with
        `pip install --find-links <output_dir>/<sha> monorepo.src.python.a.b` or serve the output
        directory with the relay.
        """
    )

    namespace = StrOption(
        default="monorepo",
        help=softwrap(
            """
            The first part of every dist name: `src/python/a/b` becomes `<namespace>.src.python.a.b`.
            Pick something no public package uses, e.g. your company's name.
            """
        ),
    )
    output_dir = StrOption(
        default=None,
        help=softwrap(
            """
            Where exports are written, one directory per commit sha. Relative paths are relative to
            the build root. Point this at a relay's store to publish (push mode). Default:
            `<distdir>/export-dists` (normally `dist/export-dists`).
            """
        ),
    )
    strip_source_roots = BoolOption(
        default=False,
        help=softwrap(
            """
            Leave the source root out of dist names: with source root `src/python`, the target in
            `src/python/a/b` becomes `<namespace>.a.b` instead of `<namespace>.src.python.a.b`.
            """
        ),
    )
    include_test_utils = BoolOption(
        default=False,
        help="Also export `python_test_utils` targets (python_tests are never exported).",
    )
    third_party_pins = EnumOption(
        default=ThirdPartyPins.AS_WRITTEN,
        help=softwrap(
            """
            How third-party requirements appear in Requires-Dist. `as-written`: the requirement
            string from the BUILD file or requirements.txt. `lockfile`: pinned `==` to the version
            in the target's resolve lockfile (when the repository has one), so a bumped pin in the
            monorepo is installed exactly on the notebook's next install. A direct URL requirement
            is never pinned (see `url_requirement_map`), and pip, setuptools, wheel and virtualenv
            are pinned only where a file of the dist imports them (a pin would downgrade the
            notebook's own installers). On an upgrade as the README advises (pip's
            `--upgrade-strategy only-if-needed` with the new commit's constraints file, naming the
            installed monorepo dists; uv without `--upgrade`), `lockfile` moves exactly the
            third-party packages whose lockfile pin changed between the two commits, and only
            those the upgraded dists require; `as-written` moves one only where a new requirement
            excludes the installed version.
            """
        ),
    )
    version_scheme = EnumOption(
        default=VersionScheme.CONTENT,
        help=softwrap(
            """
            Which commit a dist's version names. `content`: the newest first-parent commit, at or
            before the exported one, that changed any input of the dist or of its first-party
            dependencies (its files, paths its sources globs match, BUILD files above it, modules
            it imports, Pants configuration, third-party requirement definitions): a dist keeps
            its version and its exact wheel bytes until what it installs changes, so installs
            against a moving branch stay consistent and unchanged wheels are stored once.
            `commit`: every dist of an export gets the exported commit's version (each commit
            rebuilds every wheel).
            """
        ),
    )
    url_requirement_map = DictOption[str](
        default={},
        help=softwrap(
            """
            Export a plain requirement instead of a direct URL requirement, for teams that mirror
            such packages to an index: `{"pkg": "pkg==1.6.0"}` turns
            `pkg @ git+https://host/org/pkg.git@v1.6.0` into `pkg==1.6.0` (the original's marker
            and extras are kept). A URL requirement is never turned into a name pin otherwise, not
            even by `third_party_pins = "lockfile"`: a bare name is looked up on whatever index
            the notebook uses, where anyone may own it. Unmapped URL requirements are exported as
            written, with a warning naming the dists that declare them; the relay lists them in
            `/<ref>/constraints.txt`, which uv needs (`-c`) to install URL dependencies of
            dependencies. pip clones every git URL requirement again (and builds its metadata) on
            each install or upgrade that reaches it, even when nothing changed: measured here, a
            no-change `pip install --upgrade` (pip 25.3) of a dist with one git URL requirement
            took 15-17 s against 6-7 s with the same package from an index, on a loaded 2-core
            machine with the repository on local disk; on StackStorm st2, ten dists' no-change
            upgrade took about 97 s. Mapping the package ends the cloning.
            """
        ),
    )
    version_template = StrOption(
        default="0.{count}+g{short_sha}",
        help=softwrap(
            """
            The version of a dist, from the commit `version_scheme` picks for it. Placeholders:
            `{count}` (commits on the first-parent history up to that commit), `{sha}` (its full
            sha), `{short_sha}` (its first 12 hex digits). The default is a final release with the sha as local label: pip, uv and
            pex pick the newest without --pre, `NAME==0.N` matches it, and exact pins resolve.
            Avoid `.devN` schemes: pip finds no version when a requirement has a range and only
            dev releases exist. Must be a valid PEP 440 version and should grow with `{count}`.
            """
        ),
    )
    typed = BoolOption(
        default=False,
        help=softwrap(
            """
            Mark every exported Python package as typed (PEP 561): each dist gets a `py.typed`
            file beside its modules, so mypy and pyright read the annotations of the installed
            dist instead of treating it as untyped (mypy: "module is installed, but missing
            library stubs or py.typed marker"). A target's `export_dist_typed` field overrides this
            either way. Mark only code whose annotations you want checked against: a type checker
            then trusts them as written.
            """
        ),
    )
    allow_dirty = BoolOption(
        default=False,
        help=softwrap(
            """
            Export even when the work tree has uncommitted changes. Such an export is marked: its
            directory is `<sha>.dirty`, so it is never taken for the commit, and the dists whose
            inputs have uncommitted changes (with version_scheme = "commit": every dist) get
            versions whose local label ends in `.dirty`.
            """
        ),
    )
    explain = StrOption(
        default=None,
        help=softwrap(
            """
            Instead of writing an export, explain one dist, given its target address or its dist
            name: version, files and the target owning each, each Requires-Dist line and the
            dependency edge that produced it (inferred import, explicit, or excluded with `!`), and
            files under a source root that no exported target owns. Works in a work tree with
            uncommitted changes too (it writes nothing): it explains the files as they are.
            """
        ),
    )
    unexportable_dependencies = EnumOption(
        default=UnexportableDependencies.WARN,
        help=softwrap(
            """
            What to do when an exported target depends on a target that cannot be a dist
            (`files`, `pex_binary`, `python_tests`, a target with `skip_export_dist=True`, ...):
            `warn` names each such dependency and leaves it out of Requires-Dist; `error` stops.
            """
        ),
    )
    skip_paths = StrListOption(
        default=[],
        help=softwrap(
            """
            Leave out every target whose directory, or a directory above it, matches one of these
            globs (relative to the build root): `["**/tests", "**/fixtures",
            "st2common/bin/migrations/v3.5"]` leaves out every directory named tests or fixtures,
            everything below them, and one directory. It applies to every target type, custom
            ones too, and needs no BUILD edit; a trailing `/` or `/**` changes nothing. A target
            left out this way is treated like one with `skip_export_dist=True`: an exported
            target that depends on it gets a warning naming the pattern (or an error with
            `unexportable_dependencies = "error"`). The export's summary counts the targets
            each pattern left out, and `--explain` names the pattern that left a target out.
            Put it in pants.toml: which dists exist is part of the repository's history.
            """
        ),
    )
    reuse_plans = BoolOption(
        default=True,
        help=softwrap(
            """
            Within one Pants process (pantsd), plan again only the dists whose files a commit
            edited, and keep the other plans of the export before: after a one-leaf commit at
            10,000 targets this saves most of the export's own time. Only when nothing else can
            have changed a plan: the same options, both work trees clean, and a commit that only
            modifies files of python_source, python_test and resource targets (no BUILD file,
            `__init__.py` or configuration; no file added, removed or renamed). Otherwise, and with
            `false`, every dist is planned. The export is the same either way.
            """
        ),
    )
    warning_examples = IntOption(
        default=DEFAULT_EXAMPLES,
        help=softwrap(
            """
            The export warns once per cause (dependencies that cannot be dists, URL requirements,
            dependency cycles, files no import can reach, ...) with the number of instances and
            this many of them; `-1` lists every one. Within one Pants process (pantsd), the next
            commit's export says a cause whose instances did not change in one line, and lists only
            the new instances of one that did.
            """
        ),
    )
