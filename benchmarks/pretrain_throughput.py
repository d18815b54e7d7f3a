"""Pre-training throughput: iclx's Lightning loop vs a plain PyTorch loop, in the same process.

Same model (gpt_tiny: 4 layers, d_model 128, context 512), batch (8 windows), optimizer (AdamW
lr 2e-3, cosine), gradient clipping (1.0) and data (GINC packed by iclx); the two loops alternate
``--rounds`` times so that load from other processes hits both alike. Prints tokens/s of each,
their ratio (the bar: >= 0.95), MFU against this machine's measured matmul peak, and tokenizer
throughput (MB/s) with 1 and 2 encoding threads.

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
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from iclx.data.corpus import split_documents  # noqa: E402
from iclx.data.ginc import GincLanguage  # noqa: E402
from iclx.data.packing import pack  # noqa: E402
from iclx.data.text_files import split_text  # noqa: E402
from iclx.data.windows import WindowDataset, WindowSampler  # noqa: E402
from iclx.optim import build_optimizer, build_scheduler  # noqa: E402
from iclx.registry import build  # noqa: E402
from iclx.sweep_summary import format_table  # noqa: E402
from iclx.throughput import matmul_peak_flops, precision_dtype  # noqa: E402
from iclx.tokenizers.base import encode_documents  # noqa: E402

MODEL = {"name": "gpt", "max_seq_len": 512, "n_layer": 4, "n_head": 4, "d_model": 128}
OPTIMIZER = {"name": "adamw", "lr": 2e-3, "betas": [0.9, 0.95], "weight_decay": 0.1,
             "schedule": {"name": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1}}
SEQ_LEN, BATCH, CLIP = 512, 8, 1.0
RESOURCES = Path(__file__).resolve().parents[1] / "iclx" / "resources" / "corpus"


def load() -> str:
    return "load %.2f/%.2f/%.2f" % os.getloadavg()


def packed_ginc(folder: Path, n_documents: int = 1000) -> tuple[Path, int]:
    docs = GincLanguage().documents(n_documents, 1024)
    tokenizer = build("tokenizer", {"name": "word"})
    tokenizer.train(d.text for d in docs)
    train, val = split_documents(docs, 0.02, 0)
    encode = lambda batch, label: encode_documents(tokenizer, [d.text for d in batch])  # noqa: E731
    pack(folder, train, val, encode, lambda counts: np.arange(len(counts)), vocab_size=tokenizer.vocab_size,
         eos_id=tokenizer.eos_id, bos_id=tokenizer.bos_id)
    return folder, tokenizer.vocab_size


def plain_loop(folder: Path, vocab_size: int, steps: int, warmup: int, precision: str, seed: int) -> float:
    """tokens/s of a hand-written loop: windows from the memmap, forward, backward, clip, step."""
    from iclx.data.packing import TokenStream

    torch.manual_seed(seed)
    model = build("model", MODEL, vocab_size=vocab_size).train()
    optimizer = build_optimizer(model, OPTIMIZER)
    scheduler = build_scheduler(optimizer, OPTIMIZER["schedule"], steps + warmup)
    data = WindowDataset(TokenStream(folder, "train"), SEQ_LEN)
    order = iter(WindowSampler(len(data), seed, total=(steps + warmup) * BATCH))
    autocast = precision.startswith("bf16")
    start = 0.0
    for step in range(steps + warmup):
        if step == warmup:
            start = time.perf_counter()
        batch = torch.stack([data[next(order)] for _ in range(BATCH)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(batch[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab_size), batch[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
    return steps * BATCH * SEQ_LEN / (time.perf_counter() - start)


def iclx_loop(folder: Path, vocab_size: int, steps: int, warmup: int, precision: str, seed: int,
              out: Path) -> tuple[float, float]:
    """tokens/s of the pretrain stage's Trainer setup (same callbacks: checkpoints, throughput, history)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from iclx.lm import LMTask, LossHistory, WindowDataModule
    from iclx.throughput import ThroughputMonitor

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == warmup:
                self.start = time.perf_counter()

        def on_train_end(self, trainer, module):
            self.seconds = time.perf_counter() - self.start

    torch.manual_seed(seed)
    total = steps + warmup
    task = LMTask(MODEL, vocab_size, OPTIMIZER, total)
    data = WindowDataModule(folder, SEQ_LEN, BATCH, seed, total)
    clock = Clock()
    monitor = ThroughputMonitor(BATCH * SEQ_LEN, task.model.flops_per_token(SEQ_LEN), None)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=total, precision=precision, gradient_clip_val=CLIP,
        logger=False, enable_progress_bar=True, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, use_distributed_sampler=False, log_every_n_steps=10, default_root_dir=str(out),
        callbacks=[clock, monitor, LossHistory(out / "history.csv"),
                   ModelCheckpoint(dirpath=out / "ckpt", filename="last", every_n_train_steps=100,
                                   save_top_k=1, enable_version_counter=False, save_on_train_epoch_end=False)],
    )
    trainer.fit(task, datamodule=data)
    return steps * BATCH * SEQ_LEN / clock.seconds, task.model.flops_per_token(SEQ_LEN)


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
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {load()}")

    with tempfile.TemporaryDirectory() as tmp:
        folder, vocab_size = packed_ginc(Path(tmp))
        plain, ours = [], []
        for r in range(args.rounds):
            plain.append(plain_loop(folder, vocab_size, args.steps, args.warmup, args.precision, seed=r))
            speed, flops_per_token = iclx_loop(folder, vocab_size, args.steps, args.warmup, args.precision, seed=r,
                                               out=Path(tmp) / f"run{r}")
            ours.append(speed)
            print(f"round {r}: plain {plain[-1]:,.0f} tokens/s, iclx {ours[-1]:,.0f} tokens/s, {load()}", flush=True)
        peak32 = matmul_peak_flops("cpu", torch.float32)
        peak = peak32 if precision_dtype(args.precision) == torch.float32 else matmul_peak_flops("cpu", precision_dtype(args.precision))
        peak_bf16 = matmul_peak_flops("cpu", torch.bfloat16)
    rows = [
        ["plain PyTorch loop", statistics.median(plain), min(plain), max(plain), statistics.median(plain) * flops_per_token / peak],
        ["iclx (Lightning)", statistics.median(ours), min(ours), max(ours), statistics.median(ours) * flops_per_token / peak],
    ]
    print(f"\ngpt_tiny ({MODEL['n_layer']} layers, d_model {MODEL['d_model']}), context {SEQ_LEN}, batch {BATCH}, "
          f"AdamW, precision {args.precision}; {args.rounds} rounds of {args.steps} steps")
    print(format_table(["loop", "median tokens/s", "min", "max", "MFU"], rows))
    ratios = [o / p for o, p in zip(ours, plain)]
    print(f"\nratio iclx / plain: {statistics.median(plain) and statistics.median(ours) / statistics.median(plain):.3f} "
          f"(median of rounds); per round: {', '.join(f'{x:.3f}' for x in ratios)}")
    print(f"measured matmul peak ({2048}x{2048}): fp32 {peak32 / 1e9:,.0f} GFLOP/s, bf16 {peak_bf16 / 1e9:,.0f} GFLOP/s; "
          f"{flops_per_token / 1e6:.2f} MFLOP per token")

    wiki = (RESOURCES / "wikitext2_sample.txt").read_text() + (RESOURCES / "shakespeare_sample.txt").read_text()
    text_docs = split_text(wiki, "blank_line")
    bpe = build("tokenizer", {"name": "bpe", "vocab_size": 4096})
    bpe.train(text_docs)
    ginc_docs = [d.text for d in GincLanguage().documents(300, 1024)]
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
