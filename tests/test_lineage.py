"""The artifact lineage: stages never import each other, keys hash exactly their material, and a
builder's version bump rebuilds exactly its artifact and what depends on it, saying why."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from iclx import lineage
from iclx.artifacts import MANIFEST, config_key
from iclx.cli import run_cli
from iclx.run import Run

PACKAGE = Path(lineage.__file__).resolve().parent
TINY = [
    "~experiment", "stages=[tokenize,pack,pretrain]", "trainer.enable_progress_bar=false",
    "data.n_documents=40", "data.document_length=100", "data.validation.fraction=0.1",
    "model.n_layer=1", "model.d_model=16", "model.n_head=2", "model.max_seq_len=32",
    "pretrain.batch_size=2", "trainer.max_steps=3", "pretrain.val_every=3", "pretrain.checkpoint_every=3",
    "pretrain.val_windows=2", "pretrain.samples.n=1", "pretrain.samples.max_new_tokens=2",
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every iclx module ``path`` imports, at top level or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.split(".")[0] == "iclx"}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_no_stage_imports_another_stage_or_the_entrypoint():
    for name, path in MODULES.items():
        if not name.startswith("iclx.stages."):
            continue
        bad = {m for m in imported_modules(path) if (m.startswith("iclx.stages.") and m != name) or m.startswith("iclx.cli")}
        assert not bad, f"{name} imports {sorted(bad)}"
    users_of_cli = [n for n, p in MODULES.items() if n not in ("iclx.cli", "iclx.__main__") and "iclx.cli" in imported_modules(p)]
    assert not users_of_cli, f"modules that import the entrypoint: {users_of_cli}"


def test_no_import_circle_in_the_package():
    graph = {name: {m for m in imported_modules(path) if m in MODULES and m != name} for name, path in MODULES.items()}

    def circle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return trail
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
        return None

    # a package imports its submodules to register them; a circle through an __init__ is that
    circles = [c for n in graph if (c := circle_from(n)) and not any(MODULES[m].name == "__init__.py" for m in c)]
    assert not circles, f"import circles: {circles[:3]}"


def test_runs_pass_nothing_between_stages_but_the_lineage():
    assert "state" not in Run.__dataclass_fields__
    for name, path in MODULES.items():
        assert "run.state" not in path.read_text(), name


def test_a_key_is_the_hash_of_the_material_in_its_manifest(in_tmp):
    assert run_cli(TINY) == 0
    for kind in ("tokenizer", "pack", "pretrain"):
        (manifest_file,) = (in_tmp / "cache" / kind).glob(f"*/{MANIFEST}")
        manifest = json.loads(manifest_file.read_text())
        assert manifest["material"]["kind"] == kind and manifest["material"]["version"] == lineage.ARTIFACTS[kind].version
        assert config_key(manifest["material"]) == manifest["key"] == manifest_file.parent.name
    pretrain = json.loads(next((in_tmp / "cache" / "pretrain").glob(f"*/{MANIFEST}")).read_text())["material"]
    pack_key = next((in_tmp / "cache" / "pack").glob(f"*/{MANIFEST}")).parent.name
    assert pretrain["upstream"] == {"pack": pack_key} and pretrain["config"]["model"]["d_model"] == 16


def built_and_reused(log_text: str) -> tuple[dict[str, str], set[str]]:
    """(kind -> why it was built, kinds reused) from a run's log."""
    built, reused = {}, set()
    for line in log_text.splitlines():
        words = line.split(" - ", 1)[-1].split()
        if words[:1] == ["building"] and words[2] == "artifact":
            built[words[1]] = line.split("(", 1)[1].rsplit(")", 1)[0]
        elif words[:1] == ["reusing"]:
            reused.add(words[1])
    return built, reused


def run_log(folder: Path) -> str:
    return (folder / "iclx.log").read_text()


def test_a_version_bump_rebuilds_exactly_that_artifact_and_its_downstream(in_tmp, monkeypatch):
    assert run_cli([*TINY, "hydra.run.dir=first"]) == 0
    built, _ = built_and_reused(run_log(in_tmp / "first"))
    assert built == {"tokenizer": "no tokenizer artifact in the cache yet", "pack": "no pack artifact in the cache yet",
                     "pretrain": "no pretrain artifact in the cache yet", "hardware": "no hardware artifact in the cache yet"}

    pack = lineage.ARTIFACTS["pack"]
    monkeypatch.setitem(lineage.ARTIFACTS, "pack", lineage.ArtifactKind(**{**pack.__dict__, "version": pack.version + 1}))
    assert run_cli([*TINY, "hydra.run.dir=second"]) == 0
    built, reused = built_and_reused(run_log(in_tmp / "second"))
    assert built == {"pack": f"code version {pack.version} -> {pack.version + 1}", "pretrain": "upstream pack changed"}
    assert {"tokenizer", "hardware"} <= reused
    assert len(list((in_tmp / "cache" / "pack").glob(f"*/{MANIFEST}"))) == 2


def test_a_config_change_names_the_key_that_changed(in_tmp):
    assert run_cli([*TINY, "hydra.run.dir=first"]) == 0
    assert run_cli([*TINY, "model.d_model=32", "hydra.run.dir=second"]) == 0
    built, reused = built_and_reused(run_log(in_tmp / "second"))
    assert built == {"pretrain": "config changed: model.d_model"}
    assert {"tokenizer", "pack"} <= reused


@pytest.mark.parametrize("kind", sorted(k for k, spec in lineage.ARTIFACTS.items() if spec.config is not None))
def test_every_config_kind_has_a_material_from_the_config_alone(kind):
    from conftest import compose_config

    cfg = compose_config(["~experiment"])
    material = lineage.Lineage(cfg).material(kind)
    assert material["kind"] == kind and set(material["upstream"]) == set(lineage.ARTIFACTS[kind].upstream_of(cfg))
    assert lineage.Lineage(cfg).key(kind) == config_key(material)


# The keys of the quickstart-family artifacts before curation existed: curate=none (the default)
# must leave every one of them as it was, so no cached artifact is rebuilt.
KEYS_BEFORE_CURATION = {
    "quickstart": {"corpus": "7c2ec54318940291", "tokenizer": "8b68cc2841e3bff3", "pack": "4673a29f214a8a98", "pretrain": "f6e5f38e10170cda"},
    "pretrain_tiny": {"corpus": "f78670a3289aaedd", "tokenizer": "918b250a1927ab6d", "pack": "f1e63d5094e3763e", "pretrain": "37936e823048d175"},
    "clustered_icl": {"corpus": "853314e0f34bcf3b", "tokenizer": "e9a397d846fc1b3c", "pack": "1cbeb1c2127603ed", "pretrain": "f7d2db07bfad0c3d"},
}


@pytest.mark.parametrize("experiment", sorted(KEYS_BEFORE_CURATION))
def test_curate_none_changes_no_key(experiment):
    from conftest import compose_config

    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.curate.name == "none"
    assert {kind: lineage.Lineage(cfg).key(kind) for kind in KEYS_BEFORE_CURATION[experiment]} == KEYS_BEFORE_CURATION[experiment]
    assert lineage.Lineage(cfg).material("corpus")["upstream"] == {}
