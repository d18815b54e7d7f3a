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


def test_a_file_changed_after_the_build_is_named_and_the_artifact_rebuilt(tmp_path, caplog):
    store = ArtifactStore(tmp_path)
    store.get_or_build("pack", "k", lambda f: (f / "shard.bin").write_bytes(b"\x01" * 1000))
    (tmp_path / "pack" / "k" / "shard.bin").write_bytes(b"\x01" * 499 + b"\x02" + b"\x01" * 500)  # same size
    rebuilt = []
    with caplog.at_level("INFO", logger="iclx"):
        fresh = ArtifactStore(tmp_path)
        assert not fresh.exists("pack", "k") or not fresh.reusable("pack", "k")
        fresh.get_or_build("pack", "k", lambda f: rebuilt.append((f / "shard.bin").write_bytes(b"\x01" * 1000)))
    assert rebuilt and (tmp_path / "pack" / "k" / "shard.bin").read_bytes() == b"\x01" * 1000
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"pack artifact k is damaged (shard.bin was changed after the build (checksum differs)): it will not be used; "
        f"it is rebuilt when a stage needs it ({tmp_path / 'pack' / 'k'})"
    ]
    assert "building pack artifact k (the cached one is damaged: shard.bin was changed" in caplog.text
    assert ArtifactStore(tmp_path).reusable("pack", "k")


def test_an_artifact_without_checksums_is_rebuilt(tmp_path, caplog):
    folder = tmp_path / "tokenizer" / "k"
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_text('{"kind": "tokenizer", "key": "k", "material": {}}')  # as built before checksums
    with caplog.at_level("INFO", logger="iclx"):
        ArtifactStore(tmp_path).get_or_build("tokenizer", "k", lambda f: (f / "vocab.json").write_text("{}"))
    assert "the cached one is damaged: artifact.json records no checksums (built by an older iclx)" in caplog.text
    assert (folder / "vocab.json").is_file()


def test_big_files_are_checked_by_sampled_blocks_on_use_and_in_full_by_verify(tmp_path, monkeypatch):
    from iclx import integrity

    monkeypatch.setattr(integrity, "FULL_HASH_LIMIT", 1000)
    monkeypatch.setattr(integrity, "BLOCK", 10)
    monkeypatch.setattr(integrity, "SAMPLED_BLOCKS", 4)
    store = ArtifactStore(tmp_path)
    folder = store.get_or_build("pack", "k", lambda f: (f / "big.bin").write_bytes(bytes(5000)))
    data = bytearray(5000)
    data[2000] = 1  # between the sampled blocks (at 0, 1663, 3326 and 4990)
    (folder / "big.bin").write_bytes(bytes(data))
    assert integrity.damage(folder, MANIFEST) is None
    assert integrity.damage(folder, MANIFEST, full=True) == "big.bin was changed after the build (checksum differs)"
    data[1665] = 1  # inside a sampled block
    (folder / "big.bin").write_bytes(bytes(data))
    assert integrity.damage(folder, MANIFEST) == "big.bin was changed after the build (checksum differs)"
