r"""The artifact lineage: every kind of artifact, declared once, and the run's view of them.

```
[curate] ---> corpus ---> tokenizer ---> pack (+ order) ---> pretrain ---> (evaluate, generate: the language model)
                                                                  \---> embeddings (lm), retriever (epr)
```

``curate`` is upstream of the corpus only when the run curates (``curate`` names a pipeline, see
``iclx.curate``): with ``curate=none`` (the default) the corpus's material, and so every key
downstream of it, is what it was before curation existed.

Each :class:`ArtifactKind` names its upstream kinds, the slice of the run config it depends on, its
builder, its loader and a code ``version``. An artifact's *material* is exactly that: the kind,
the version, the config slice and the keys of its upstream artifacts; its key is the hash of the
material and its manifest (``artifact.json``) stores the material. So a key and its manifest
cannot drift, and bumping a builder's ``version`` rebuilds exactly that artifact and everything
downstream of it (their material holds its key). Kinds whose material a component gives at run
time (embeddings of some texts, a retriever of a pool, a measured matmul peak) declare only their
version here and go through :meth:`Lineage.folder`.

A stage asks ``run.lineage`` for what it needs (``run.lineage.get("pack")``,
``run.lineage.language_model()``) and never imports another stage. Values are built (or loaded)
once per run and kept; keys are computed once per run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iclx.artifacts import ArtifactStore, config_key
from iclx.errors import ConfigError, DataError
from iclx.registry import _plain

log = logging.getLogger("iclx")


@dataclass(frozen=True)
class ArtifactKind:
    name: str
    version: int  # bump when the builder's output changes for the same material
    upstream: tuple[str, ...] | Callable[[Any], tuple[str, ...]] = ()  # or run config -> the kinds it reads
    config: Callable[[Any], Any] | None = None  # run config -> the slice this kind depends on
    build: Callable[[Any, Path], None] | None = None  # (run, folder) -> writes the artifact
    load: Callable[[Path], Any] | None = None  # folder -> what later stages use (default: the folder)
    compute: Callable[[Any], Any] | None = None  # run -> value, for kinds kept in memory, never stored
    resumable: bool = False  # a crashed build continues in its .partial folder

    def upstream_of(self, cfg: Any) -> tuple[str, ...]:
        return self.upstream(cfg) if callable(self.upstream) else self.upstream


# --- config slices (what each kind depends on) ----------------------------------------------------


def _curating(cfg: Any) -> bool:
    from iclx.curate.pipeline import curating

    return curating(cfg)


def _corpus_upstream(cfg: Any) -> tuple[str, ...]:
    return ("curate",) if _curating(cfg) else ()


def _corpus_material(cfg: Any) -> Any:
    from iclx.data.corpus import build_source

    if _curating(cfg):  # the curated documents (the upstream key, with its held-out validation text),
        return {"validation": _plain((cfg.get("data") or {}).get("validation"))}  # split as data.validation says
    section = {k: v for k, v in _plain(cfg.data).items() if k != "order"}
    return {"data": section, "fingerprint": build_source(cfg.data).fingerprint()}


def _pack_material(cfg: Any) -> Any:
    from iclx.pretraining import seq_len

    return {"order": _plain(cfg.data.get("order")), "window_tokens": seq_len(cfg) + 1, "seed": cfg.pretrain.seed}


def _pretrain_material(cfg: Any) -> Any:
    from iclx.pretraining import Settings

    return {"model": _plain(cfg.model), "optimizer": _plain(cfg.optimizer), "shape": Settings.from_config(cfg).shape(cfg)}


# --- builders and loaders (imported when used: they need torch) -----------------------------------


def _curate_material(cfg: Any) -> Any:
    from iclx.curate.pipeline import material

    return material(cfg)


def _build_curate(run: Any, folder: Path) -> None:
    from iclx.curate.pipeline import build_curated

    build_curated(run, folder)


def _load_corpus(run: Any) -> Any:
    from iclx.data.corpus import load_corpus

    if _curating(run.cfg):
        from iclx.curate.pipeline import load_curated_corpus

        return load_curated_corpus(run)
    return load_corpus(run.cfg.data)


def _build_tokenizer(run: Any, folder: Path) -> None:
    from iclx.tokenizers.base import train_tokenizer

    train_tokenizer(run.cfg.tokenizer, _training_texts(run), folder)


def _training_texts(run: Any) -> Any:
    """The corpus's training texts, read only when the tokenizer starts training (after its config is built)."""
    for doc in run.lineage.get("corpus").train:
        yield doc.text


def _load_tokenizer(folder: Path) -> Any:
    from iclx.tokenizers.base import load_tokenizer

    return load_tokenizer(folder)


def _build_pack(run: Any, folder: Path) -> None:
    from iclx.data.packing import build_packed_stream

    build_packed_stream(run, folder)


def _build_pretrain(run: Any, folder: Path) -> None:
    from iclx.pretraining import train

    train(run, folder)


def _load_model(folder: Path) -> Any:
    from iclx.models.bundle import load_model

    return load_model(folder)


ARTIFACTS: dict[str, ArtifactKind] = {
    kind.name: kind
    for kind in [
        # the curated corpus (a datatrove pipeline's output); a killed build continues its finished tasks
        ArtifactKind("curate", 1, config=_curate_material, build=_build_curate, resumable=True),
        ArtifactKind("corpus", 1, _corpus_upstream, _corpus_material, compute=_load_corpus),
        ArtifactKind("tokenizer", 1, ("corpus",), lambda cfg: _plain(cfg.tokenizer), _build_tokenizer, _load_tokenizer),
        ArtifactKind("pack", 1, ("tokenizer",), _pack_material, _build_pack),
        ArtifactKind("pretrain", 1, ("pack",), _pretrain_material, _build_pretrain, _load_model, resumable=True),
        # material given at run time by the component that builds them:
        ArtifactKind("embeddings", 1),  # an embedder's config and fit, and the texts (iclx.embedders.base)
        ArtifactKind("retriever", 1),  # EPR's dual encoder: its config, pool, scorer LM and seed (iclx.selectors.epr)
        ArtifactKind("hardware", 1),  # this machine's measured matmul peak, for MFU (iclx.pretraining)
    ]
}


@dataclass
class LanguageModel:
    """The model the stages after pre-training use, its tokenizer, and a key naming the weights
    (caches that depend on the weights, such as ``lm`` embeddings and EPR, include it)."""

    model: Any
    tokenizer: Any
    key: str


@dataclass
class Lineage:
    """One run's artifacts: keys from its config, values built or loaded once per run."""

    cfg: Any
    store: ArtifactStore | None = None
    run: Any = None  # builders get the run (loggers, threads, the lineage itself)
    _keys: dict[str, str] = field(default_factory=dict)
    _values: dict[str, Any] = field(default_factory=dict)

    def material(self, kind: str) -> dict[str, Any]:
        spec = ARTIFACTS[kind]
        if spec.config is None:
            raise ValueError(f"artifact kind '{kind}' takes its material at run time: use Lineage.folder")
        return {"kind": kind, "version": spec.version, "config": spec.config(self.cfg),
                "upstream": {up: self.key(up) for up in spec.upstream_of(self.cfg)}}

    def key(self, kind: str) -> str:
        if kind not in self._keys:
            self._keys[kind] = config_key(self.material(kind))
        return self._keys[kind]

    def path(self, kind: str) -> Path:
        return self._store().path(kind, self.key(kind))

    def exists(self, kind: str) -> bool:
        """Whether this config's artifact is in the cache, built and whole (force=true: not yet rebuilt)."""
        return kind in self._values or self._store().reusable(kind, self.key(kind))

    def get(self, kind: str) -> Any:
        """The artifact's value (its loader's result, else its folder), built first if missing."""
        if kind not in self._values:
            spec = ARTIFACTS[kind]
            if spec.compute is not None:
                self._values[kind] = spec.compute(self.run)
            else:
                folder = self._store().get_or_build(
                    kind, self.key(kind), lambda f: spec.build(self.run, f), material=self.material(kind),
                    resumable=spec.resumable,
                )
                self._values[kind] = self._load(kind, folder)
                self._note(kind, folder)
        return self._values[kind]

    def _note(self, kind: str, path: Path) -> None:
        """Tell the run which artifact (or checkpoint) it used: summary.json's ``artifacts``, which
        ``iclx export RUN_DIR`` reads to find the run's model."""
        note = getattr(self.run, "note_artifact", None)
        if note is not None:
            note(kind, path)

    @staticmethod
    def _load(kind: str, folder: Path) -> Any:
        """The loader's value; a file that passed its checksums but cannot be read names the artifact."""
        load = ARTIFACTS[kind].load
        if load is None:
            return folder
        try:
            return load(folder)
        except (OSError, ValueError, EOFError, RuntimeError, KeyError) as e:
            raise DataError(
                f"{kind} artifact {folder.name} cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                f"rebuild it with force=true or check it with: iclx cache verify {folder}"
            ) from e

    def folder(self, kind: str, material: Mapping[str, Any], build: Callable[[Path], None]) -> Path:
        """The folder of an artifact whose material the caller gives (embeddings, retriever, hardware)."""
        full = {"kind": kind, "version": ARTIFACTS[kind].version, "config": dict(material), "upstream": {}}
        return self._store().get_or_build(kind, config_key(full), build, material=full)

    # --- the language model of the stages after pre-training -------------------------------------

    def language_model(self) -> LanguageModel:
        """In order: ``pretrain.checkpoint`` (a bundle folder, ``model.pt`` or ``.ckpt``); a
        pre-trained ``model=hf`` with a ``path``; this config's pre-training artifact. It never
        trains: without one, a ConfigError says how to get one."""
        if "language_model" not in self._values:
            self._values["language_model"] = self._resolve_model()
        return self._values["language_model"]

    def _resolve_model(self) -> LanguageModel:
        from iclx.models.bundle import build_model, load_model

        cfg = self.cfg
        checkpoint = (cfg.get("pretrain") or {}).get("checkpoint")
        if checkpoint:
            path = Path(str(checkpoint)).expanduser().resolve()
            model, tokenizer = load_model(path)
            self._note("checkpoint", path)
            return LanguageModel(model, tokenizer, config_key("checkpoint", str(path), path.stat().st_mtime_ns))
        if cfg.model.get("name") == "hf" and cfg.model.get("path"):
            from iclx.tokenizers.huggingface import PretrainedTokenizer

            tokenizer = PretrainedTokenizer(str(cfg.model.path))
            model = build_model(_plain(cfg.model), tokenizer.vocab_size).eval()
            return LanguageModel(model, tokenizer, config_key("hf", cfg.model))
        if not self.exists("pretrain"):
            store, key = self._store(), self.key("pretrain")
            built = store.path("pretrain", key).is_dir() and not store.force
            state = f"is damaged ({store.damage('pretrain', key)})" if built else f"is not in {store.root}"
            raise ConfigError(
                f"no pre-trained model for this config: artifact pretrain/{key} {state} (add pretrain to "
                "stages, e.g. stages=[tokenize,pack,pretrain,evaluate], or set pretrain.checkpoint=<model folder>)"
            )
        model, tokenizer = self.get("pretrain")
        return LanguageModel(model, tokenizer, self.key("pretrain"))

    def _store(self) -> ArtifactStore:
        if self.store is None:
            raise ValueError("this lineage has no artifact store (it only computes keys)")
        return self.store
