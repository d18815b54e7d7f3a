"""Under CI=true a test skipped for a missing optional extra fails; other skips stay skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SKIPPING = '''
import pytest

def test_needs_an_extra():
    pytest.importorskip("iclx_no_such_extra_module")

@pytest.fixture
def extra():
    return pytest.importorskip("iclx_no_such_extra_module")

def test_needs_an_extra_through_a_fixture(extra):
    pass

def test_needs_data():
    pytest.skip("../shared/data is not available")
'''


def run_pytest(folder: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_missing_extras_fail_only_in_ci(tmp_path):
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")  # the hook under test, as the suite has it
    (tmp_path / "test_skipping.py").write_text(SKIPPING)

    local = run_pytest(tmp_path, ci=None)
    assert local.returncode == 0 and "3 skipped" in local.stdout, local.stdout[-2000:]

    ci = run_pytest(tmp_path, ci="true")
    # a fixture that importorskips fails the test's setup: pytest counts it as an error
    assert ci.returncode == 1 and "1 failed, 1 skipped, 1 error" in ci.stdout, ci.stdout[-2000:]
    assert ("FAILED test_skipping.py::test_needs_an_extra - CI=true: an optional extra is missing, so this test did "
            "not run: could not import 'iclx_no_such_extra_module'") in ci.stdout
    assert "SKIPPED [1] test_skipping.py:15: ../shared/data is not available" in ci.stdout
