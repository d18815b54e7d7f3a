"""Where iclx's config groups live, and which options each group has (read from the folder)."""

from __future__ import annotations

from pathlib import Path


def conf_dir() -> Path:
    """The config folder: ``iclx/conf`` inside an installed wheel, ``conf/`` in a source checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    if (packaged / "config.yaml").is_file():
        return packaged
    return here.parent / "conf"


def group_options(root: Path | None = None) -> dict[str, list[str]]:
    """Every config group (``data``, ``data/order``, ...) and its options, read from the folder."""
    root = root or conf_dir()
    groups: dict[str, list[str]] = {}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if options:
            groups[folder.relative_to(root).as_posix()] = options
    return groups
