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


def group_options(*roots: Path) -> dict[str, list[str]]:
    """Every config group (``data``, ``data/order``, ...) and its options, read from the folders
    (default: iclx's own; user folders add options and groups)."""
    groups: dict[str, set[str]] = {}
    for root in roots or (conf_dir(),):
        for folder in sorted(p for p in Path(root).rglob("*") if p.is_dir()):
            options = {f.stem for f in folder.glob("*.yaml")}
            if options:
                groups.setdefault(folder.relative_to(root).as_posix(), set()).update(options)
    return {group: sorted(options) for group, options in sorted(groups.items())}


def user_config_dirs(args: list[str]) -> list[Path]:
    """Config folders a command line adds to iclx's own: ``--config-dir``/``-cd`` DIR,
    ``--config-path``/``-cp`` DIR and ``hydra.searchpath=[file://DIR, ...]`` (``pkg://`` entries
    are packages: they are listed by Hydra, not here). A folder that does not exist is an error."""
    from iclx.errors import ConfigError

    dirs: list[tuple[str, str]] = []
    for i, arg in enumerate(args):
        for flag in ("--config-dir", "-cd", "--config-path", "-cp"):
            if arg == flag and i + 1 < len(args):
                dirs.append((flag, args[i + 1]))
            elif arg.startswith(flag + "="):
                dirs.append((flag, arg.split("=", 1)[1]))
        if arg.lstrip("+").startswith("hydra.searchpath="):
            entries = arg.split("=", 1)[1].strip("[]")
            dirs += [("hydra.searchpath", e.strip().strip("'\"")[len("file://"):])
                     for e in entries.split(",") if e.strip().strip("'\"").startswith("file://")]
    out = []
    for where, folder in dirs:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{where}: config folder {folder} does not exist")
        out.append(path)
    return out
