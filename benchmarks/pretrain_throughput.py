"""Pre-training throughput: iclx's Lightning loop vs a plain PyTorch loop, in the same process.

Same model (gpt_tiny: 4 layers, d_model 128, context 512), batch (8 windows), optimizer (AdamW
lr 2e-3, cosine), gradient clipping (1.0) and data (GINC packed by iclx); the two loops alternate
``--rounds`` times so that load from other processes hits both alike, and speed is taken from the
median step time (end of one step to end of the next, everything in between included), which a
burst of load on a shared machine moves less than the mean. Prints tokens/s of each, their ratio
(the bar: >= 0.95), MFU against this machine's measured matmul peak, and tokenizer throughput
(MB/s) with 1 and 2 encoding threads.

    python benchmarks/pretrain_throughput.py [--steps 40] [--rounds 3] [--precision 32-true]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Waiting OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, spinning
# threads steal the cores the working ones need (measured here: 2-thread steps 4-20x slower).
# Set before torch loads OpenMP; OMP_WAIT_POLICY=active in the environment restores the default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from iclx.data.corpus import split_documents  # noqa: E402
from iclx.data.ginc import ginc_documents  # noqa: E402
from iclx.data.packing import pack  # noqa: E402
from iclx.data.text_files import split_text  # noqa: E402
from iclx.data.windows import WindowDataset, WindowSampler  # noqa: E402
from iclx.ginc import GincLanguage  # noqa: E402
from iclx.optim import build_optimizer, build_scheduler  # noqa: E402
from iclx.registry import build  # noqa: E402
from iclx.tables import format_table  # noqa: E402
from iclx.tokenizers.base import encode_documents  # noqa: E402
from iclx.training import cpu_supports_bf16  # noqa: E402
from iclx.training.throughput import matmul_peak_flops, precision_dtype  # noqa: E402

MODEL = {"name": "gpt", "max_seq_len": 512, "n_layer": 4, "n_head": 4, "d_model": 128}
OPTIMIZER = {"name": "adamw", "lr": 2e-3, "betas": [0.9, 0.95], "weight_decay": 0.1,
             "schedule": {"name": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1}}
SEQ_LEN, BATCH, CLIP = 512, 8, 1.0
TOKENS = SEQ_LEN * BATCH  # per step
RESOURCES = Path(__file__).resolve().parents[1] / "iclx" / "resources" / "corpus"


def load() -> str:
    return "load %.2f/%.2f/%.2f" % os.getloadavg()


def packed_ginc(folder: Path, n_documents: int = 1000) -> tuple[Path, int]:
    docs = ginc_documents(GincLanguage(), n_documents, 1024)
    tokenizer = build("tokenizer", {"name": "word"})
    tokenizer.train(d.text for d in docs)
    train, val = split_documents(docs, 0.02, 0)
    encode = lambda batch, label: encode_documents(tokenizer, [d.text for d in batch])  # noqa: E731
    pack(folder, train, val, encode, lambda counts: np.arange(len(counts)), vocab_size=tokenizer.vocab_size,
         eos_id=tokenizer.eos_id, bos_id=tokenizer.bos_id)
    return folder, tokenizer.vocab_size


def plain_loop(folder: Path, vocab_size: int, steps: int, warmup: int, precision: str, seed: int) -> list[float]:
    """Step times (s) of a hand-written loop: windows from the memmap, forward, backward, clip, step."""
    from iclx.data.packing import TokenStream

    torch.manual_seed(seed)
    model = build("model", MODEL, vocab_size=vocab_size).train()
    optimizer = build_optimizer(model, OPTIMIZER)
    scheduler = build_scheduler(optimizer, OPTIMIZER["schedule"], steps + warmup)
    data = WindowDataset(TokenStream(folder, "train"), SEQ_LEN)
    order = iter(WindowSampler(len(data), seed, total=(steps + warmup) * BATCH))
    autocast = precision.startswith("bf16")
    ends = []
    for _ in range(steps + warmup):
        batch = torch.stack([data[next(order)] for _ in range(BATCH)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(batch[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab_size), batch[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        ends.append(time.perf_counter())
    return list(np.diff(ends[warmup - 1 :]))


def iclx_loop(folder: Path, vocab_size: int, steps: int, warmup: int, precision: str, seed: int,
              out: Path) -> tuple[list[float], float]:
    """Step times (s) of the pretrain stage's Trainer setup (same callbacks: checkpoints, throughput,
    history, progress bar), and the model's FLOPs per token."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from iclx.training.lm import LMTask, LossHistory, WindowDataModule
    from iclx.training.throughput import TokenThroughput

    class StepClock(L.Callback):
        def __init__(self):
            self.ends = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.ends.append(time.perf_counter())

    torch.manual_seed(seed)
    total = steps + warmup
    task = LMTask(MODEL, vocab_size, OPTIMIZER, total)
    data = WindowDataModule(folder, SEQ_LEN, BATCH, seed, total)
    clock = StepClock()
    monitor = TokenThroughput(BATCH * SEQ_LEN, task.model.flops_per_token(SEQ_LEN), None)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=total, precision=precision, gradient_clip_val=CLIP,
        logger=False, enable_progress_bar=True, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, use_distributed_sampler=False, log_every_n_steps=10, default_root_dir=str(out),
        callbacks=[clock, monitor, LossHistory(out / "history.csv"),
                   ModelCheckpoint(dirpath=out / "ckpt", filename="last", every_n_train_steps=100,
                                   save_top_k=1, enable_version_counter=False, save_on_train_epoch_end=False)],
    )
    trainer.fit(task, datamodule=data)
    return list(np.diff(clock.ends[warmup - 1 :])), task.model.flops_per_token(SEQ_LEN)


def speed(step_times: list[float]) -> float:
    """tokens/s at the median step time."""
    return TOKENS / statistics.median(step_times)


def tokenizer_speed(workers: int, tokenizer, texts: list[str], repeats: int = 3) -> float:
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in encode_documents(tokenizer, texts, workers=workers, batch_size=64):
            pass
        best = min(best, time.perf_counter() - start)
    return megabytes / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per loop and round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="32-true", help="Lightning precision: 32-true or bf16-mixed")
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (a step time is the gap after the previous step)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, {load()}")

    with tempfile.TemporaryDirectory() as tmp:
        folder, vocab_size = packed_ginc(Path(tmp))
        plain, ours = [], []  # step times of every round
        for r in range(args.rounds):
            plain.append(plain_loop(folder, vocab_size, args.steps, args.warmup, args.precision, seed=r))
            times, flops_per_token = iclx_loop(folder, vocab_size, args.steps, args.warmup, args.precision, seed=r,
                                               out=Path(tmp) / f"run{r}")
            ours.append(times)
            print(f"round {r}: plain {speed(plain[-1]):,.0f} tokens/s, iclx {speed(ours[-1]):,.0f} tokens/s "
                  f"(median step), {load()}", flush=True)
        peak32 = matmul_peak_flops("cpu", torch.float32)
        dtype = precision_dtype(args.precision)
        peak = peak32 if dtype == torch.float32 else matmul_peak_flops("cpu", dtype)
        peak_bf16 = matmul_peak_flops("cpu", torch.bfloat16, size=512)
    all_plain, all_ours = [t for r in plain for t in r], [t for r in ours for t in r]
    rows = [[name, speed(times), len(times) * TOKENS / sum(times), speed(times) * flops_per_token / peak]
            for name, times in (("plain PyTorch loop", all_plain), ("iclx (Lightning)", all_ours))]
    print(f"\ngpt_tiny ({MODEL['n_layer']} layers, d_model {MODEL['d_model']}), context {SEQ_LEN}, batch {BATCH}, "
          f"AdamW, precision {args.precision}; {args.rounds} rounds of {args.steps} steps each")
    print(format_table(["loop", "tokens/s (median step)", "tokens/s (mean)", "MFU"], rows))
    print(f"\nratio iclx / plain (median step time): {speed(all_ours) / speed(all_plain):.3f}; per round: "
          + ", ".join(f"{speed(o) / speed(p):.3f}" for o, p in zip(ours, plain)))
    print(f"measured matmul peak: fp32 {peak32 / 1e9:,.1f} GFLOP/s (2048x2048), bf16 {peak_bf16 / 1e9:,.2f} GFLOP/s "
          f"(512x512; {'native' if cpu_supports_bf16() else 'no AMX/AVX512-BF16 on this CPU'}); "
          f"{flops_per_token / 1e6:.2f} MFLOP per token")

    wiki = (RESOURCES / "wikitext2_sample.txt").read_text() + (RESOURCES / "shakespeare_sample.txt").read_text()
    text_docs = split_text(wiki, "blank_line")
    bpe = build("tokenizer", {"name": "bpe", "vocab_size": 4096})
    bpe.train(text_docs)
    ginc_docs = [d.text for d in ginc_documents(GincLanguage(), 300, 1024)]
    word = build("tokenizer", {"name": "word"})
    word.train(ginc_docs)
    rows = []
    for name, tokenizer, texts in (("bpe 4k (bundled text)", bpe, text_docs), ("word (GINC)", word, ginc_docs),
                                   ("byte (bundled text)", build("tokenizer", {"name": "byte"}), text_docs)):
        one, two = tokenizer_speed(1, tokenizer, texts), tokenizer_speed(2, tokenizer, texts)
        rows.append([name, one, two, two / one])
    print("\n" + format_table(["tokenizer", "MB/s 1 worker", "MB/s 2 workers", "speed-up"], rows))
    print(load())


if __name__ == "__main__":
    main()
