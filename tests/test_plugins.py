"""Plugins are explicit: `python -m iclx` imports nothing from the current folder (a stray file there
shadows neither a library nor a plugin), while plugins on PYTHONPATH load as before."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import PLUGINS, read_summary, run_iclx

# Each writes a file named after itself when imported, then stops the process: a run that
# imported one of them fails or leaves its file behind.
SHADOWS = ("hydra", "typing", "iclx_test_plugin")  # a library iclx imports, a stdlib module, a plugin's name


def plant(folder: Path, module: str, body: str = "raise SystemExit('imported from the current folder')") -> None:
    (folder / f"{module}.py").write_text(f"open({f'imported_{module}'!r}, 'w').close()\n{body}\n")


def imported(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("imported_*"))


def test_files_in_the_current_folder_shadow_nothing(tmp_path):
    for module in SHADOWS:
        plant(tmp_path, module)
    proc = run_iclx(tmp_path, "plugins=[iclx_test_plugin]", "stages=[echo]", "seed=3", "hydra.run.dir=run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert imported(tmp_path) == []
    summary = read_summary(tmp_path / "run")
    assert summary["stages"]["echo"]["value"] == 7  # the plugin on PYTHONPATH (tests/plugins) ran


CWD_PLUGIN = """from iclx.registry import register


@register("stage", "from_cwd")
def from_cwd(run):
    return {"value": 11}
"""


def test_a_plugin_in_the_current_folder_loads_only_when_put_on_the_path(tmp_path):
    plant(tmp_path, "iclx_cwd_plugin", CWD_PLUGIN)
    refused = run_iclx(tmp_path, "plugins=[iclx_cwd_plugin]", "stages=[from_cwd]", "hydra.run.dir=refused")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "iclx: plugins: cannot import module 'iclx_cwd_plugin': No module named 'iclx_cwd_plugin' (iclx_cwd_plugin is "
        "in the current folder, which iclx does not import from: PYTHONPATH=. iclx ... loads it, or install it)"]
    assert imported(tmp_path) == []
    loaded = run_iclx(tmp_path, "plugins=[iclx_cwd_plugin]", "stages=[from_cwd]", "hydra.run.dir=loaded",
                      PYTHONPATH=os.pathsep.join([".", str(PLUGINS), os.environ.get("PYTHONPATH", "")]))
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert imported(tmp_path) == ["imported_iclx_cwd_plugin"]
    assert json.loads((tmp_path / "loaded" / "summary.json").read_text())["stages"]["from_cwd"]["value"] == 11
