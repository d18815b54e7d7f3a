"""``iclx cache ls|verify|gc`` on a store of small real artifacts (built by ArtifactStore itself)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iclx.artifacts import ArtifactStore
from iclx.commands import dispatch


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    store = ArtifactStore(tmp_path / "cache")
    store.get_or_build("tokenizer", "aaaa", lambda f: (f / "vocab.json").write_text('{"a": 1}'),
                       material={"kind": "tokenizer", "config": {"name": "word", "vocab_size": 300}})
    store.get_or_build("pack", "bbbb", lambda f: (f / "train-00000.bin").write_bytes(bytes(range(256)) * 40),
                       material={"kind": "pack", "config": {"order": {"name": "none"}, "window_tokens": 65}})
    return store


def cache(store: ArtifactStore, capsys, *args: str) -> tuple[int, str, str]:
    code = dispatch(["cache", *args, "--cache-dir", str(store.root)])
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_lists_kind_key_size_last_use_state_and_material(store, capsys):
    code, out, _ = cache(store, capsys, "ls")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["kind", "key", "size", "last", "used", "state", "material"]
    pack = next(line for line in lines if line.startswith("pack"))
    kind, key, size, unit = pack.split()[:4]
    assert (kind, key, unit) == ("pack", "bbbb", "KB") and 10.0 < float(size) < 11  # the shard and the manifest
    assert " ok " in pack and "order.name=none window_tokens=65" in pack
    assert re.fullmatch(rf"2 artifacts, 1\d\.\d KB in {re.escape(str(store.root))}", lines[-1])
    code, out, _ = cache(store, capsys, "ls", "tokenizer", "--long")
    assert code == 0 and '"vocab_size": 300' in out and "pack" not in out


def test_verify_names_a_same_size_overwrite_and_exits_1(store, capsys):
    assert cache(store, capsys, "verify")[0] == 0
    shard = store.path("pack", "bbbb") / "train-00000.bin"
    data = bytearray(shard.read_bytes())
    data[5000] ^= 0xFF
    shard.write_bytes(bytes(data))
    code, out, _ = cache(store, capsys, "verify")
    assert code == 1
    assert "pack/bbbb: DAMAGED: train-00000.bin was changed after the build (checksum differs)" in out
    assert "tokenizer/aaaa: ok" in out and "2 artifacts checked, 1 damaged" in out


def test_gc_broken_removes_damaged_and_leftovers_but_keeps_resumable_and_locked(store, capsys, tmp_path):
    (store.path("tokenizer", "aaaa") / "vocab.json").unlink()
    leftover = store.root / "pack" / "cccc.partial"
    leftover.mkdir()
    (leftover / "train-00000.bin").write_bytes(b"half")
    killed = store.root / "pretrain" / "dddd.partial" / "checkpoints"
    killed.mkdir(parents=True)
    (killed / "last.ckpt").write_bytes(b"ckpt")
    building = store.root / "pack" / "eeee.partial"
    building.mkdir()
    holder = hold_lock(store.path("pack", "eeee"))
    try:
        code, out, _ = cache(store, capsys, "ls")
        assert f"building (pid {holder.pid})" in out and "unfinished, resumable" in out
        code, out, _ = cache(store, capsys, "gc", "--broken", "--dry-run")
        assert code == 0 and "would remove tokenizer/aaaa" in out and store.path("tokenizer", "aaaa").is_dir()
        code, out, _ = cache(store, capsys, "gc", "--broken")
    finally:
        holder.kill()
        holder.wait()
    assert code == 0
    assert "removed tokenizer/aaaa (" in out and "damaged: vocab.json is missing" in out
    assert "removed pack/cccc.partial" in out and not leftover.exists()
    assert "kept pretrain/dddd.partial: a killed pre-training that the same command resumes" in out and killed.is_dir()
    assert "kept pack/eeee.partial: a running job holds its lock" in out and building.is_dir()
    assert store.path("pack", "bbbb").is_dir()  # whole: kept


def test_gc_older_than_uses_the_last_use(store, capsys):
    old = store.path("tokenizer", "aaaa")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    store.get_or_build("pack", "bbbb", lambda f: None)  # a run uses it: its last use is now
    code, out, _ = cache(store, capsys, "gc", "--older-than", "2d")
    assert code == 0 and "removed tokenizer/aaaa" in out and not old.exists() and store.path("pack", "bbbb").is_dir()


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["gc"], 2, "iclx: cache: gc needs --broken, --older-than AGE or both (see iclx cache --help)"),
        (["gc", "--older-than", "3x"], 2, "iclx: cache: --older-than takes an age such as 30d, 12h or 2w, got '3x'"),
        (["ls", "--broken"], 2, "iclx: cache: --older-than, --broken and --dry-run are options of gc, not of ls"),
        (["verify", "retriever"], 1, "iclx: cache: no artifact 'retriever' in {root} (kinds there: pack, tokenizer)"),
    ],
)
def test_bad_input_is_one_line(store, capsys, args, code, line):
    got, out, err = cache(store, capsys, *args)
    assert got == code and err.strip() == line.format(root=store.root) and out == ""


def test_no_cache_folder_is_one_line(tmp_path, capsys):
    assert dispatch(["cache", "ls", "--cache-dir", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.strip() == f"iclx: cache: no cache folder at {tmp_path / 'none'} (set --cache-dir or ICLX_CACHE_DIR)"


def hold_lock(artifact: Path) -> subprocess.Popen:
    """Another process that holds the artifact's build lock (as a job building it does)."""
    code = (
        "import sys, time, os; from filelock import FileLock; lock = FileLock(sys.argv[1] + '.lock'); lock.acquire();"
        "open(sys.argv[1] + '.lock.pid', 'w').write(str(os.getpid())); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(artifact)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc
