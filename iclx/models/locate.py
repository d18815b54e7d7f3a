"""The trained model a user points at: a run folder, a model folder, a ``model.pt`` or a ``.ckpt``.

What ``iclx export`` and the lm-evaluation-harness adapter (``iclx.lmeval``) accept::

    outputs/quickstart/2025-01-01_12-00-00     a run: the model its stages used
    .cache/iclx/pretrain/<key>                 a pre-training artifact, or any folder with model.pt
    .../model.pt, .../checkpoints/last.ckpt    one checkpoint file

A run folder names its model in ``summary.json`` (``artifacts``: the pre-training artifact or
``pretrain.checkpoint`` it used, by absolute path). Runs written before iclx recorded that are
traced through their config (``.hydra/config.yaml``): its ``pretrain.checkpoint``, else the key of
its pre-training artifact, looked up in the cache (``cache_dir``, else ``$ICLX_CACHE_DIR``, else the
config's ``paths.cache_dir`` as seen from the current folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from iclx.errors import DataError

MODEL_FILE = "model.pt"  # as iclx.models.bundle (not imported here: it needs torch)
CHECKPOINT_SUFFIXES = (".pt", ".ckpt")


def locate_model(source: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A path ``iclx.models.bundle.load_model`` reads, or a DataError in one line saying why not."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{source}: no such file or folder")
    if path.is_file():
        if path.suffix in CHECKPOINT_SUFFIXES:
            return path
        raise DataError(f"{source}: not a model file (expected a folder, a {MODEL_FILE} or a .ckpt)")
    if (path / MODEL_FILE).is_file():
        return path
    if (path / "summary.json").is_file() or (path / ".hydra" / "config.yaml").is_file():
        return _run_model(path, cache_dir)
    checkpoints = sorted((path / "checkpoints").glob("*.ckpt"))
    if checkpoints:  # an unfinished pre-training (killed): its checkpoints are usable one by one
        raise DataError(f"{source}: holds no {MODEL_FILE} (an unfinished pre-training?); name a checkpoint instead: {checkpoints[-1]}")
    raise DataError(f"{source}: no model here (expected a run folder, a model folder with {MODEL_FILE}, a {MODEL_FILE} or a .ckpt)")


def _run_model(run_dir: Path, cache_dir: str | Path | None) -> Path:
    recorded = _recorded(run_dir)
    if recorded is not None:
        return recorded
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise DataError(f"{run_dir}: its summary.json names no model and it has no .hydra/config.yaml to trace one")
    from omegaconf import OmegaConf

    import iclx.resolvers  # noqa: F401 -- the ${iclx.*} resolvers the saved config uses

    try:
        cfg = OmegaConf.load(config_file)
        checkpoint = (cfg.get("pretrain") or {}).get("checkpoint")
        model_cfg = cfg.get("model") or {}
        hf_path = model_cfg.get("path") if model_cfg.get("name") == "hf" else None
    except Exception as e:  # noqa: BLE001 -- a damaged or hand-edited config: say which file
        raise DataError(f"{config_file}: cannot be read ({type(e).__name__}: {_first_line(e)})") from e
    if checkpoint:
        path = Path(str(checkpoint)).expanduser()
        if not path.exists():
            raise DataError(f"{run_dir}: its model, pretrain.checkpoint={checkpoint}, is not there (relative to {Path.cwd()})")
        return path
    if hf_path:
        raise DataError(f"{run_dir}: the run used the Hugging Face model '{hf_path}' (model.path): it is in Hugging Face form already")
    return _artifact_of(run_dir, cfg, cache_dir)


def _recorded(run_dir: Path) -> Path | None:
    """The checkpoint or pre-training artifact the run's summary.json says it used."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    used = summary.get("artifacts") if isinstance(summary, dict) else None
    if not isinstance(used, dict):
        return None
    for kind in ("checkpoint", "pretrain"):
        if kind in used:
            path = Path(used[kind])
            if not path.exists():
                raise DataError(f"{run_dir}: its model {path} ({kind}) is gone (removed by iclx cache gc, or moved)")
            return path
    return None


def _artifact_of(run_dir: Path, cfg: Any, cache_dir: str | Path | None) -> Path:
    from iclx.lineage import Lineage

    try:
        key = Lineage(cfg).key("pretrain")
        root = Path(cache_dir or os.environ.get("ICLX_CACHE_DIR") or str(cfg.paths.cache_dir)).expanduser()
    except Exception as e:  # noqa: BLE001 -- the config names files or settings this machine lacks
        raise DataError(
            f"{run_dir}: cannot trace its pre-trained model from its config ({type(e).__name__}: {_first_line(e)}); "
            "name the artifact folder instead (iclx cache ls lists them)"
        ) from e
    folder = root / "pretrain" / key
    if not (folder / MODEL_FILE).is_file():
        raise DataError(
            f"{run_dir}: its pre-trained model pretrain/{key} is not in {root} "
            "(set --cache-dir or ICLX_CACHE_DIR, or name the artifact folder: iclx cache ls lists them)"
        )
    return folder


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""
