"""The layers and the absence of import cycles are checked, and the check bites.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and are read by
import-linter: the CLI on top, then the research harness, then the two roles
(independent of each other), operations shared by both, privacy, and the shared
domain at the bottom; in each role, operations above the runtime; at a bank, the
guard and the relay independent of each other, sharing only their contract, and the
relay (code in the coordinator's app bundle) importing neither guard nor privacy
code; no cycles between the modules of any package; private modules used only inside
their package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "coordinator", "credit", "deploy", "participant", "privacy", "simulations")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_architecture_contract_is_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 kept, 0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy_of_the_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages and the contracts, copied, so a test can break them."""
    root = tmp_path_factory.mktemp("code")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("credit/schema.py", "import participant.guard.bank", "Packages are layers"),
        ("participant/guard/bank.py", "import simulations.partition", "Packages are layers"),
        ("coordinator/app/checkpoint.py", "import coordinator.ops.runs", "operations sit above"),
        ("participant/guard/training.py", "import participant.node.check", "node operations sit"),
        ("coordinator/ops/runs.py", "import coordinator.app.aggregation", "file names and"),
        ("participant/node/check.py", "import participant.guard.training", "guard's settings"),
        ("participant/relay/client_app.py", "import participant.guard.bank", "share only their"),
        ("participant/contract.py", "import participant.relay.socket_link", "share only their"),
        ("participant/relay/socket_link.py", "import privacy.noise", "never imports the guard"),
        ("credit/feature_stats.py", "import credit.encoding", "No import cycles"),
        ("deploy/bundle.py", "import credit.audit._chain", "Private modules"),
    ],
)
def test_an_import_that_breaks_the_architecture_is_caught(
    copy_of_the_code: Path, module: str, line: str, broken: str
) -> None:
    path = copy_of_the_code / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # a violation planted by the test\n")
    try:
        result = _lint_imports(copy_of_the_code)
    finally:
        path.write_text(original)
    assert result.returncode == 1, result.stdout
    report = " ".join(result.stdout.split())  # import-linter wraps long contract names
    assert broken in report.split("Broken contracts", 1)[1], result.stdout
