from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata

import iclx
from iclx.provenance import describe, git_state, provenance


def test_provenance_names_versions_and_machine_without_importing_torch():
    code = "import json, sys; from iclx.provenance import provenance; r = provenance(); print(json.dumps([r, 'torch' in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    record, torch_imported = json.loads(proc.stdout)
    assert not torch_imported
    assert record["iclx"] == iclx.__version__
    assert record["python"] == platform.python_version()
    assert record["torch"] == metadata.version("torch") and record["hydra"] == metadata.version("hydra-core")
    assert record["lightning"] == metadata.version("lightning")
    assert record["cpus"] >= 1 and record["cpu"] and record["hostname"]
    assert "torch_threads" not in record and "gpu" not in record  # torch was not asked: not imported


def test_with_torch_imported_it_reports_threads_and_gpu():
    import torch

    record = provenance()
    assert record["torch"] == torch.__version__
    assert record["torch_threads"] == torch.get_num_threads()
    assert ("gpu" in record) == (torch.cuda.is_available() or torch.backends.mps.is_available())
    json.dumps(record)  # it goes into summary.json as it is


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


def test_git_state_gives_the_commit_and_whether_the_tree_is_dirty(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == {"git_commit": head, "git_dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path) == {"git_commit": head, "git_dirty": True}


def test_no_checkout_no_commit(tmp_path):
    (tmp_path / "inner").mkdir()
    _git(tmp_path, "init", "-q")  # an enclosing repository is not iclx's checkout
    assert git_state(tmp_path / "inner") == {}


def test_describe_is_one_line_with_what_tells_machines_apart():
    record = {"iclx": "0.1.0", "git_commit": "1a2b3c4d5e6f7a8b", "git_dirty": True, "python": "3.11.7",
              "torch": "2.13.0", "hydra": "1.3.8", "cpu": "AMD EPYC", "cpus": 16, "gpu": "NVIDIA H200",
              "gpu_count": 1, "torch_threads": 4, "hostname": "node7"}
    assert describe(record) == ("iclx 0.1.0 (git 1a2b3c4d5e, dirty), python 3.11.7, torch 2.13.0, hydra 1.3.8, "
                                "cpu AMD EPYC (16 cores usable), gpu NVIDIA H200 x1, 4 torch threads, host node7")
