"""``iclx export SOURCE OUT_DIR --format hf``: a trained model and its tokenizer for other tools."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from iclx.commands import UsageError, command_parser
from iclx.errors import ConfigError, DataError, did_you_mean
from iclx.registry import register

FORMATS = ("hf",)
TOLERANCE = 1e-4  # the largest |logit difference| between iclx and the exported model that is accepted


@register("command", "export")
def export(argv: list[str]) -> int:
    """Write a trained model and its tokenizer as a Hugging Face model folder.

    iclx export SOURCE OUT_DIR [--format hf]

    SOURCE is a run folder (the model its stages used, as its summary.json records, or traced
    through its .hydra/config.yaml and the cache), a pre-training artifact or any folder with
    model.pt, a model.pt, or a Lightning .ckpt. OUT_DIR receives config.json, model.safetensors,
    generation_config.json, tokenizer.json and tokenizer_config.json, which transformers loads
    offline (AutoModelForCausalLM, AutoTokenizer). model=gpt with learned positions becomes GPT-2,
    with positional=rope GPT-NeoX; model=hf is written as it is; other models, and options with
    no Hugging Face equivalent, are refused (iclx/models/hf_export.py has the table).

    The folder is loaded back with transformers and its logits compared with iclx's on a test
    batch: it is written only when they agree within 1e-4. OUT_DIR must be new or empty
    (--overwrite replaces it). Needs transformers (pip install 'iclx[hf]').
    """
    parser = command_parser("export", export.__doc__)
    parser.add_argument("source", metavar="SOURCE", help="a run folder, a model folder (artifact), a model.pt or a .ckpt")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the folder to write")
    parser.add_argument("--format", default="hf", help="hf: a Hugging Face transformers folder (the default, and so far the only one)")
    parser.add_argument("--cache-dir", type=Path,
                        help="where a run's artifacts are (default: $ICLX_CACHE_DIR, else the run's paths.cache_dir)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR when it holds files")
    args = parser.parse_args(argv)

    if args.format not in FORMATS:
        raise UsageError(f"export: unknown --format '{args.format}'. Known: {', '.join(FORMATS)}{did_you_mean(args.format, FORMATS)}")
    out = args.out_dir
    if out.exists() and not out.is_dir():
        raise UsageError(f"export: OUT_DIR {out} is a file")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise UsageError(f"export: {out} exists and is not empty (--overwrite replaces it)")
    try:
        import transformers  # noqa: F401
    except ImportError as e:
        raise ConfigError("export --format hf needs transformers: pip install 'iclx[hf]'") from e

    from iclx.models.bundle import load_model
    from iclx.models.hf_export import architecture, save_hf
    from iclx.models.locate import locate_model

    path = locate_model(args.source, args.cache_dir)
    model, tokenizer = load_model(path)
    kind = architecture(model)  # refuses before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")  # beside OUT_DIR: renamed into place when whole
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        check = save_hf(model, tokenizer, staging)
        if not check.max_abs_diff <= TOLERANCE:
            raise DataError(f"export: the exported model's logits differ from iclx's by {check.max_abs_diff:.3g} "
                            f"(more than {TOLERANCE:g}); nothing was written")
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = ", ".join(sorted(p.name for p in out.iterdir() if p.is_file()))
    print(f"exported {path} ({model.name}{_options(model)}) as {kind} to {out}: {files}")
    print(f"transformers loads it: max |logit difference| from iclx {check.max_abs_diff:.2g} on a "
          f"{'x'.join(map(str, check.shape))} batch of token ids")
    return 0


def _publish(staging: Path, out: Path) -> None:
    """Move the finished folder into place; an earlier OUT_DIR is removed only after that."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{staging.name}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _options(model: object) -> str:
    config = getattr(model, "config", {})
    shown = {k: config[k] for k in ("positional", "bias") if k in config}
    return "".join(f", {k}={v}" for k, v in shown.items())
