"""What dists install at the top of site-packages: warned, refused for `__init__.py` and `tests`."""
from __future__ import annotations

import logging

import pytest

from export_dists.conftest import ARGS, ENV, ENV_INHERIT, Repo
from export_dists.goal import ExportDists
from export_dists.toplevel import REFUSED_NAMES
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError

# One source root per plugin pack: each pack directory is itself the source root, so its files
# land at the top of site-packages.
PACK_ROOTS = "--source-root-patterns=['/packs/*', '/src/python']"


def pack(name: str, build: str = "python_sources()\nresources(name='data', sources=['pack.yaml', 'icon.png'])") -> dict[str, str]:
    return {
        f"packs/{name}/BUILD": build,
        f"packs/{name}/__init__.py": "",
        f"packs/{name}/common.py": "",
        f"packs/{name}/pack.yaml": "name: x\n",
        f"packs/{name}/icon.png": "png",
        f"packs/{name}/actions/__init__.py": "",
        f"packs/{name}/actions/run.py": "",
        f"packs/{name}/actions/BUILD": "python_sources()",
    }


def test_a_top_level_init_is_refused_naming_the_fix(repo: Repo) -> None:
    repo.commit(pack("alpha"))
    repo.set_options(PACK_ROOTS)
    with pytest.raises(ExecutionError) as raised:
        repo.export(Address("packs/alpha"))
    message = " ".join(str(raised.value).split())
    assert "TopLevelFilesError" in message
    assert "monorepo.packs.alpha (packs/alpha:alpha): __init__.py" in message
    assert "export_dist_allow_top_level=True" in message and "source root" in message


def test_a_top_level_tests_package_is_refused(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/tests/BUILD": "python_sources()",
            "src/python/tests/__init__.py": "",
            "src/python/tests/fixtures.py": "",
        }
    )
    with pytest.raises(ExecutionError, match=r"monorepo.src.python.tests \(src/python/tests:tests\): tests/"):
        repo.export(Address("src/python/tests"))


def test_allowed_on_the_target_it_exports_and_warns(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(
        {
            **pack("alpha", "python_sources(export_dist_allow_top_level=True)\nresources(name='data', sources=['pack.yaml', 'icon.png'])"),
            **pack("beta", "resources(name='data', sources=['pack.yaml', 'icon.png'])"),
        }
    )
    repo.set_options(PACK_ROOTS)
    with caplog.at_level(logging.WARNING):
        export = repo.export(Address("packs/alpha"), Address("packs/beta", target_name="data"))
    assert {d.name for d in export.dists} == {"monorepo.packs.alpha", "monorepo.packs.beta.data"}
    warnings = [" ".join(r.getMessage().split()) for r in caplog.records if r.levelno == logging.WARNING]
    top = [w for w in warnings if "top of site-packages" in w]
    assert len(top) == 1, warnings
    assert "monorepo.packs.alpha (packs/alpha:alpha): __init__.py, common.py" in top[0]
    assert "monorepo.packs.beta.data (packs/beta:data): icon.png, pack.yaml" in top[0]
    assert "overwrite each other" in top[0]


def test_packages_and_a_lone_module_under_a_source_root_are_fine(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(
        {
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/__init__.py": "",
            "src/python/BUILD": "python_sources(name='single')",
            "src/python/single.py": "",
        }
    )
    with caplog.at_level(logging.WARNING):
        repo.export(Address("src/python/a"), Address("src/python", target_name="single"))
    assert not [r for r in caplog.records if "top of site-packages" in r.getMessage()]


def test_explain_shows_top_level_names(repo: Repo) -> None:
    repo.commit(pack("alpha"))
    result = repo.rule_runner.run_goal_rule(
        ExportDists, global_args=[*ARGS, PACK_ROOTS], args=["--export-dists-explain=packs/alpha", "::"],
        env=ENV, env_inherit=ENV_INHERIT,
    )
    assert result.exit_code == 0, result.stderr
    assert "top-level names in site-packages: __init__.py, common.py" in result.stdout
    assert "refused unless the target sets export_dist_allow_top_level=True: __init__.py" in result.stdout


def test_refused_names() -> None:
    assert {"__init__.py", "tests", "test"} <= REFUSED_NAMES
