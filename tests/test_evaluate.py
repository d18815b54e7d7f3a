"""The evaluate stage end to end (in-process), on a small untrained model saved as a bundle."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from iclx.cli import run_cli
from iclx.registry import build

from conftest import compose_config, only_run_dir, read_summary


@pytest.fixture(scope="module")
def ginc_bundle(tmp_path_factory):
    """An untrained GPT with a word tokenizer of the default GINC corpus, saved like pre-training does."""
    from iclx.data.ginc import ginc_documents
    from iclx.ginc import GincLanguage
    from iclx.models.bundle import save_model

    folder = tmp_path_factory.mktemp("bundle")
    tokenizer = build("tokenizer", {"name": "word"})
    tokenizer.train(d.text for d in ginc_documents(GincLanguage(), 50, 200))
    torch.manual_seed(0)
    model = build("model", {"name": "gpt", "n_layer": 1, "n_head": 2, "d_model": 32, "max_seq_len": 128},
                  vocab_size=tokenizer.vocab_size)
    save_model(folder, model.eval(), tokenizer)
    return folder


def evaluate_args(bundle, *extra):
    return ["stages=[evaluate]", f"pretrain.checkpoint={bundle}", "hydra.run.dir=run", *extra]


def read_predictions(run_dir):
    return [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]


def test_ginc_random_and_knn_in_one_run(in_tmp, ginc_bundle):
    code = run_cli(evaluate_args(
        ginc_bundle, "task=ginc", "task.n_queries=12", "task.pool_per_group=6", "evaluate.shots=[0,2,4]",
        "evaluate.selectors=[random,knn]",
    ))
    assert code == 0
    run_dir = only_run_dir(in_tmp)
    records = read_predictions(run_dir)
    assert len(records) == 2 * 3 * 12  # selectors x shots x queries
    labels = None
    for r in records:
        assert set(r) == {"task", "selector", "k", "query", "demonstrations", "scores", "prediction", "gold", "correct", "dropped",
                          "prompt", "logprob_sum", "label_tokens", "content_free_sum"}
        assert len(r["demonstrations"]) == r["k"] and len(set(r["demonstrations"])) == r["k"]
        assert r["query"] not in r["demonstrations"]
        labels = labels or list(r["scores"])
        assert list(r["scores"]) == labels  # every label scored, in one order
        assert r["prediction"] == max(r["scores"], key=r["scores"].get)
        assert r["correct"] == (r["prediction"] == r["gold"]) and r["gold"] in labels
    # matched GINC prompts: a query's demonstrations share its concept and start property
    assert all(d.startswith("ginc-pool-id-c") for r in records for d in r["demonstrations"])
    # nested demonstration sets: the k=2 prompt's demonstrations are among the k=4 prompt's
    by_key = {(r["selector"], r["k"], r["query"]): r for r in records}
    for q in {r["query"] for r in records}:
        for selector in ("random", "knn"):
            assert set(by_key[selector, 2, q]["demonstrations"]) <= set(by_key[selector, 4, q]["demonstrations"])
    metrics = read_summary(run_dir)["stages"]["evaluate"]
    for selector in ("random", "knn"):
        for k in (0, 2, 4):
            correct = [r["correct"] for r in records if r["selector"] == selector and r["k"] == k]
            assert metrics[f"{selector}/accuracy_k{k}"] == pytest.approx(np.mean(correct))
        assert metrics[f"{selector}/concept_agreement_k4"] == 1.0
        assert 0 <= metrics[f"{selector}/label_agreement_k2"] <= 1
    assert (run_dir / "plots" / "evaluate_accuracy.png").stat().st_size > 0
    with open(run_dir / "evaluate_results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["k"]) for r in rows] == [(s, str(k)) for s in ("random", "knn") for k in (0, 2, 4)]


def test_shared_split_file_task_never_uses_the_query_as_its_demonstration(in_tmp, ginc_bundle):
    data = in_tmp / "words.jsonl"
    words = "a b c d e f g h".split()
    data.write_text("".join(json.dumps({"text": f"{w} {w}", "label": i % 2}) + "\n" for i, w in enumerate(words)))
    code = run_cli(evaluate_args(
        ginc_bundle, "task=jsonl", f"task.pool={data}", f"task.queries={data}", "task.verbalizer={0: b, 1: c}",
        "task.template.input_format='{input}'", "task.template.output_format=' {output}'", "task.template.separator=' / '",
        "evaluate.shots=[7]", "evaluate.selectors=[random]",
    ))
    assert code == 0
    records = read_predictions(only_run_dir(in_tmp))
    assert len(records) == 8
    for r in records:
        assert r["query"] not in r["demonstrations"] and len(r["demonstrations"]) == 7
        assert set(r["scores"]) == {"b", "c"}
    metrics = read_summary(only_run_dir(in_tmp))["stages"]["evaluate"]
    # 7 demonstrations from 8 examples (half of each label) without the query: 3 of 7 share its label
    assert metrics["label_agreement_k7"] == pytest.approx(3 / 7)


def test_prompts_longer_than_the_context_are_capped_counted_and_warned(in_tmp, ginc_bundle):
    """k=35 of 4-token demonstrations in a 128-token context: 31 fit (128 - EOS - 2-token query -
    1 reserved for the label = 124 = 31 x 4). The table reports 31, the agreement counts those 31
    only, and the log says so with the numbers."""
    data = in_tmp / "words.jsonl"
    words = "a b c d e f g i l m n o p q r s t v x y z aa ab ac ad ae af ag ah ai aj ak am an ao ap aq ar as at".split()
    data.write_text("".join(json.dumps({"text": f"{w} {w}", "label": (i * 7) % 3 % 2}) + "\n" for i, w in enumerate(words)))
    code = run_cli(evaluate_args(
        ginc_bundle, "task=jsonl", f"task.pool={data}", f"task.queries={data}", "task.verbalizer={0: b, 1: c}",
        "task.template.input_format='{input}'", "task.template.output_format=' {output}'", "task.template.separator=' / '",
        "evaluate.shots=[0,35]", "evaluate.selectors=[random]",
    ))
    assert code == 0
    run_dir = only_run_dir(in_tmp)
    records = [r for r in read_predictions(run_dir) if r["k"] == 35]
    assert len(records) == 40 and all(len(r["demonstrations"]) == 31 and r["dropped"] == 4 for r in records)
    labels = {f"{data}:{i + 1}": (i * 7) % 3 % 2 for i in range(len(words))}  # ids: the file as configured, the line
    agree = [labels[d] == labels[r["query"]] for r in records for d in r["demonstrations"]]
    metrics = read_summary(run_dir)["stages"]["evaluate"]
    assert metrics["label_agreement_k35"] == pytest.approx(np.mean(agree))  # the 31 in the prompt, not the 35 chosen
    assert (metrics["demos_used_k35"], metrics["truncated_k35"], metrics["demos_used_k0"]) == (31, 1.0, 0)
    log = (run_dir / "iclx.log").read_text()
    assert ("evaluate: k=35: 40 of 40 prompts held fewer demonstrations than asked (mean 31 of 35 fit in the "
            "128-token context); more than half were cut, so the k=35 results measure 31 demonstrations, not 35") in log
    assert not [line for line in log.splitlines() if "k=0:" in line and "held fewer" in line]  # k=0 asks for nothing
    with open(run_dir / "evaluate_results.csv") as f:
        assert [r["demos_used"] for r in csv.DictReader(f)] == ["0.0", "31.0"]


def test_a_one_label_model_is_warned_about():
    from iclx.tasks.example import Example
    from iclx.tasks.icl import QueryResult, degradation_warnings

    def results(predictions, gold):
        return [QueryResult(Example(id=str(i), input="x", output=g), [], {"b": 0.0, "c": -1.0}, p, g, 0, [])
                for i, (p, g) in enumerate(zip(predictions, gold))]

    half = ["b", "c"] * 50
    assert degradation_warnings(results(["b"] * 96 + ["c"] * 4, half), k=2, max_tokens=128) == [
        "k=2: 96 of 100 predictions (96.0%) are 'b', 50.0% of the gold labels: the model predicts one label whatever the query"]
    assert degradation_warnings(results(["b"] * 95 + ["c"] * 5, half), k=2, max_tokens=128) == []  # 95% is not over 95%
    assert degradation_warnings(results(["b"] * 100, ["b"] * 97 + ["c"] * 3), k=2, max_tokens=128) == []  # so is the task


def test_k_larger_than_the_pool_is_one_line(in_tmp, ginc_bundle, capsys):
    code = run_cli(evaluate_args(
        ginc_bundle, "task=ginc", "task.n_queries=4", "task.pool_per_group=3", "evaluate.shots=[0,4]", "evaluate.selectors=[random]",
    ))
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("iclx: evaluate.shots: k=4 demonstrations per query, but the pool of group group=c")
    assert err.endswith("offers only 3")
    assert not (only_run_dir(in_tmp) / "predictions.jsonl").exists()  # nothing half-written


def test_bad_evaluate_settings_are_named(in_tmp, ginc_bundle, capsys):
    assert run_cli(evaluate_args(ginc_bundle, "evaluate.normalization=avg", "evaluate.selectors=[random]")) == 1
    assert "iclx: evaluate.normalization must be one of 'sum', 'mean', got str 'avg'" in capsys.readouterr().err
    assert run_cli(evaluate_args(ginc_bundle, "evaluate.shots=[2,-1]", "evaluate.selectors=[random]")) == 1
    assert "iclx: evaluate.shots[1] must be >= 0, got -1" in capsys.readouterr().err


def test_selector_sweep_pretrains_once_and_evaluates_the_swept_selector():
    from iclx.lineage import Lineage
    from iclx.stages.evaluate import selector_configs

    keys = set()
    for seed, selector in ((0, "random"), (1, "knn"), (2, "epr")):
        cfg = compose_config(["experiment=ginc_selectors", "sweep=selectors", f"seed={seed}", f"selector={selector}"])
        keys.add(Lineage(cfg).key("pretrain"))
        assert cfg.seed == seed and cfg.report.curve == "evaluate/accuracy_k"
        assert list(selector_configs(cfg, cfg.evaluate.selectors)) == [selector]
    assert len(keys) == 1  # every job of the sweep finds one pre-training artifact
    sweep = compose_config(["experiment=ginc_selectors", "sweep=selectors"]).hydra.sweeper.params
    assert set(sweep["selector"].split(",")) == {"random", "knn", "mmr", "dpp", "bm25", "epr"}


def test_experiments_evaluate_what_they_promise():
    from iclx.stages.evaluate import selector_configs, task_variants

    quickstart = compose_config([])
    assert quickstart.stages[-1] == "evaluate" and quickstart.task.name == "ginc" and quickstart.data.name == "ginc"
    assert list(selector_configs(quickstart, quickstart.evaluate.selectors)) == ["random", "knn"]
    ginc_icl = compose_config(["experiment=ginc_icl"])
    variants = task_variants(ginc_icl, ginc_icl.evaluate.variants)
    assert {(v.split, v.example_length) for v in variants.values()} == {("id", 3), ("id", 5), ("id", 8), ("ood", 5)}
    selectors = compose_config(["experiment=ginc_selectors"])
    assert selectors.task.pool == "mixed" and 8 in selectors.evaluate.shots
    assert list(selector_configs(selectors, selectors.evaluate.selectors)) == ["random", "knn", "mmr", "dpp", "bm25", "epr"]
    assert selector_configs(selectors, selectors.evaluate.selectors)["knn"]["embedder"] == {"name": "hashing"}


def test_listed_selectors_keep_the_command_lines_overrides():
    from omegaconf import OmegaConf

    from iclx.stages.evaluate import selector_configs

    cfg = OmegaConf.create({"selector": {"name": "knn", "embedder": {"name": "lm"}, "index": "Flat", "nprobe": 16}})
    selectors = selector_configs(cfg, ["random", "knn"])
    assert selectors["knn"]["embedder"] == {"name": "lm"}  # from the composed section, not the preset file
    assert selectors["random"]["name"] == "random"


def test_a_pool_twin_of_a_query_is_left_out_and_counted(caplog):
    """Issue 12: with ids unique per file, a duplicate record in the pool would hand the selector
    the query's own label; the query itself (pool and queries from one file) stays for the others."""
    from iclx.tasks.base import Task
    from iclx.tasks.example import Example
    from iclx.tasks.icl import drop_query_twins
    from iclx.tasks.template import Template

    pool = [Example(id="pool.txt:1", input="A  great film", output="positive"),
            Example(id="pool.txt:2", input="a dull film", output="negative"),
            Example(id="same.txt:3", input="a fine cast", output="positive")]
    queries = [Example(id="queries.txt:1", input="a great film", output="positive"),
               Example(id="same.txt:3", input="a fine cast", output="positive")]
    task = Task("t", pool, queries, ["negative", "positive"], Template())
    with caplog.at_level("INFO", logger="iclx"):
        assert drop_query_twins(task) == 1
    assert [e.id for e in task.pool] == ["pool.txt:2", "same.txt:3"]
    assert "task t: 1 pool examples have the same text as a query and are left out of the pool" in caplog.text
    twins_allowed = Task("g", list(pool), queries, None, Template(), exclude_query_twins=False)
    assert drop_query_twins(twins_allowed) == 0 and len(twins_allowed.pool) == 3
