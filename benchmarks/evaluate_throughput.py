"""Queries/s of the batched label scorer vs the naive one (one full forward per label, batch 1).

Same model, same prompts, measured in the same process: k-shot prompts of a task, every label
scored both ways; the predictions must be identical. Cases:

- ``ginc``: GINC prompts, a ``gpt_tiny``-shaped GPT, one token per label (every word the HMMs
  emit): the batched scorer reads every label off one forward pass over the prompt;
- ``sst2-char``: SST-2 prompts with a character tokenizer, so " negative"/" positive" are 9
  tokens each: iclx's GPT has no KV cache, so the batched scorer runs prompt+label rows in batches;
- ``sst2-char-hf``: the same with a Hugging Face GPT-2-shaped model, whose KV cache lets the
  prompt be encoded once and both labels continue from it.

    python benchmarks/evaluate_throughput.py [--queries 64] [--k 8] [--cases ginc,sst2-char,sst2-char-hf]

Weights are random (speed and agreement do not need a trained model); ``--checkpoint`` scores
the GINC case with a trained bundle instead.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from iclx.registry import build
from iclx.tables import format_table
from iclx.tasks.base import load_task
from iclx.tasks.icl import ICLEvaluator, ScoringSettings, choose_demonstrations
from iclx.tasks.scoring import score_labels, score_labels_naive

GPT_TINY = {"name": "gpt", "n_layer": 4, "n_head": 4, "d_model": 128, "max_seq_len": 512}
GPT2_TINY = {"n_layer": 4, "n_head": 4, "n_embd": 128, "n_positions": 1024}


def ginc_case(args):
    from iclx.data.ginc import ginc_documents
    from iclx.ginc import GincLanguage

    task = load_task({"name": "ginc", "n_queries": args.queries, "pool_per_group": max(args.k, 1)}, data={"name": "ginc"})
    if args.checkpoint:
        from iclx.models.bundle import load_model

        model, tokenizer = load_model(args.checkpoint)
    else:
        tokenizer = build("tokenizer", {"name": "word"})
        tokenizer.train(d.text for d in ginc_documents(GincLanguage(), 200, 1024))
        model = build("model", GPT_TINY, vocab_size=tokenizer.vocab_size)
    return task, model, tokenizer


def sst2_case(args, hf: bool):
    task = load_task({"name": "label_text", "pool": "package:sst2/stsa.binary.train", "queries": "package:sst2/stsa.binary.dev",
                      "verbalizer": {0: "negative", 1: "positive"}, "max_queries": args.queries, "max_pool": 500,
                      "template": {"input_format": "Review: {input}\n", "output_format": "Sentiment: {output}", "separator": "\n\n"}})
    tokenizer = build("tokenizer", {"name": "char"})
    tokenizer.train(e.input for e in task.pool)
    if hf:
        model = build("model", {"name": "hf", "config": GPT2_TINY}, vocab_size=tokenizer.vocab_size)
    else:
        model = build("model", {**GPT_TINY, "max_seq_len": 1024}, vocab_size=tokenizer.vocab_size)
    return task, model, tokenizer


def measure(name, task, model, tokenizer, args):
    torch.manual_seed(0)
    model.eval()
    evaluator = ICLEvaluator(model, tokenizer, task, ScoringSettings(batch_size=args.batch_size), max_tokens=int(model.max_seq_len))
    ranked = choose_demonstrations({"name": "random"}, task, args.k, None)
    prompts = [evaluator.builder.build(q, task.pool, r, reserve=evaluator.reserve).ids for q, r in zip(task.queries, ranked)]
    labels = evaluator.label_ids
    timings = {}
    results = {}
    for scorer_name, scorer in (("naive", lambda: score_labels_naive(model, prompts, labels)),
                                ("batched", lambda: score_labels(model, prompts, labels, batch_size=args.batch_size))):
        scorer()  # warm-up: first-call allocations and kernel selection
        start = time.perf_counter()
        results[scorer_name] = scorer()
        timings[scorer_name] = time.perf_counter() - start
    same = bool((results["naive"].argmax(1) == results["batched"].argmax(1)).all())
    max_diff = float(np.abs(results["naive"] - results["batched"]).max())
    n = len(prompts)
    return [name, n, len(labels), max(len(ids) for ids in labels), round(float(np.mean([len(p) for p in prompts]))),
            round(n / timings["naive"], 2), round(n / timings["batched"], 2), round(timings["naive"] / timings["batched"], 1),
            same, f"{max_diff:.1e}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--k", type=int, default=8, help="demonstrations per prompt")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cases", default="ginc,sst2-char,sst2-char-hf")
    parser.add_argument("--checkpoint", default=None, help="a trained GINC model bundle for the ginc case")
    args = parser.parse_args()
    torch.manual_seed(0)
    builders = {"ginc": lambda: ginc_case(args), "sst2-char": lambda: sst2_case(args, hf=False),
                "sst2-char-hf": lambda: sst2_case(args, hf=True)}
    columns = ["case", "queries", "labels", "label tokens", "prompt tokens", "naive q/s", "batched q/s", "speedup",
               "same predictions", "max |diff|"]
    rows = []
    for name in args.cases.split(","):
        rows.append(measure(name, *builders[name](), args))
        print(format_table(columns, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(f"k={args.k}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f} (1 min)")
    print(format_table(columns, rows))


if __name__ == "__main__":
    main()
