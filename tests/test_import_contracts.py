"""The import rules of DESIGN.md (pyproject.toml's [tool.importlinter] contracts) hold for the tree.

lint-imports runs as a program: inside the test process, Twisted's
zope.interface declarations confuse its check of the contracts' options.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY

pytestmark = pytest.mark.interop

PACKAGES = ("schema", "radiusd", "billingd", "nas", "cli")
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_rules_hold():
    result = lint_imports(REPOSITORY)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_rule_is_reported(tmp_path):
    """The check can fail: in a copy of the tree where nas imports billingd, one contract breaks."""
    for package in PACKAGES:
        shutil.copytree(
            REPOSITORY / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPOSITORY / "pyproject.toml", tmp_path)
    with (tmp_path / "nas" / "__init__.py").open("a") as init:
        init.write("\nimport billingd.ledger  # noqa: F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "nas imports only schema BROKEN" in result.stdout
    assert "radiusd never imports billingd or nas KEPT" in result.stdout
