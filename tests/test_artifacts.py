"""Artifacts: keyed by config, reused, visible only when complete, rebuilt with force."""

from __future__ import annotations

import threading
import time

import pytest

from iclx.artifacts import MANIFEST, ArtifactStore, config_key


def test_key_depends_on_content_not_order_or_container_type():
    from omegaconf import OmegaConf

    assert config_key({"a": 1, "b": [1, 2]}) == config_key(OmegaConf.create({"b": [1, 2], "a": 1}))
    assert config_key({"a": 1}) != config_key({"a": 2})
    assert config_key({"a": 1}, "upstream1") != config_key({"a": 1}, "upstream2")


def test_built_once_then_reused(tmp_path, caplog):
    store = ArtifactStore(tmp_path)
    calls = []

    def builder(folder):
        calls.append(folder)
        (folder / "data.txt").write_text("hello")

    with caplog.at_level("INFO", logger="iclx"):
        first = store.get_or_build("tokenizer", "k1", builder, material={"vocab": 10})
        second = ArtifactStore(tmp_path).get_or_build("tokenizer", "k1", builder)
    assert first == second == tmp_path / "tokenizer" / "k1"
    assert len(calls) == 1 and (first / "data.txt").read_text() == "hello"
    assert "reusing tokenizer artifact k1" in caplog.text
    assert '"vocab": 10' in (first / MANIFEST).read_text()


def test_failed_build_leaves_nothing_visible(tmp_path):
    store = ArtifactStore(tmp_path)

    def broken(folder):
        (folder / "half.bin").write_bytes(b"xx")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.get_or_build("shards", "k", broken)
    assert not store.exists("shards", "k") and not (tmp_path / "shards" / "k").exists()
    built = store.get_or_build("shards", "k", lambda f: (f / "whole.bin").write_bytes(b"ok"))
    assert sorted(p.name for p in built.iterdir()) == [MANIFEST, "whole.bin"]  # the half file is gone


def test_resumable_builder_finds_its_partial_work(tmp_path):
    store = ArtifactStore(tmp_path)

    def crash_after_checkpoint(folder):
        (folder / "last.ckpt").write_text("step 5")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.get_or_build("checkpoint", "k", crash_after_checkpoint, resumable=True)
    seen = []
    store.get_or_build("checkpoint", "k", lambda f: seen.append((f / "last.ckpt").read_text()), resumable=True)
    assert seen == ["step 5"]


def test_force_rebuilds_once_per_run(tmp_path):
    ArtifactStore(tmp_path).get_or_build("tok", "k", lambda f: (f / "v").write_text("1"))
    forced = ArtifactStore(tmp_path, force=True)
    counter = iter("23")
    path = forced.get_or_build("tok", "k", lambda f: (f / "v").write_text(next(counter)))
    again = forced.get_or_build("tok", "k", lambda f: (f / "v").write_text(next(counter)))
    assert (path / "v").read_text() == "2" and again == path


def test_concurrent_jobs_build_once(tmp_path):
    built = []

    def slow_builder(folder):
        built.append(1)
        time.sleep(0.3)
        (folder / "x").write_text("done")

    threads = [threading.Thread(target=lambda: ArtifactStore(tmp_path).get_or_build("ckpt", "k", slow_builder)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and (tmp_path / "ckpt" / "k" / "x").read_text() == "done"
