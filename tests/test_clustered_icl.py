"""experiment=clustered_icl with sweep=orderings: one model per ordering and seed, everything else
equal, every model answering the same prompts; and a tiny version of the sweep end to end."""

from __future__ import annotations

import csv
import itertools

from omegaconf import OmegaConf

from iclx.cli import run_cli

from conftest import compose_config

ORDERINGS = ("random", "cluster", "iclm")


def job_config(order: str, seed: int):
    return compose_config(["experiment=clustered_icl", "sweep=orderings", f"data/order={order}", f"seed={seed}"])


def differing_keys(a: dict, b: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key in set(a) | set(b):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            keys |= differing_keys(x, y, f"{prefix}{key}.")
        elif x != y:
            keys.add(f"{prefix}{key}")
    return keys


def test_the_sweep_varies_only_the_ordering_and_the_seed():
    from iclx.lineage import Lineage

    sweep = compose_config(["experiment=clustered_icl", "sweep=orderings"])
    params = sweep.hydra.sweeper.params
    assert params["data/order"].split(",") == list(ORDERINGS) and params["seed"] == "0,1,2"
    assert list(sweep.report.curve) == ["evaluate/standard/accuracy_k", "evaluate/eos_separated/accuracy_k"]
    assert list(sweep.report.by) == ["data/order"]

    jobs = {(order, seed): job_config(order, seed) for order, seed in itertools.product(ORDERINGS, range(3))}
    plain = {job: OmegaConf.to_container(cfg.copy(), resolve=False) for job, cfg in jobs.items()}
    for cfg in plain.values():
        cfg.pop("hydra")
    reference = plain[("random", 0)]
    for (order, seed), cfg in plain.items():
        expected = ({"data.order"} if order != "random" else set()) | ({"seed"} if seed != 0 else set())
        changed = {"data.order" if key.startswith("data.order.") else key for key in differing_keys(reference, cfg)}
        assert changed == expected, (order, seed)
    # One pre-training per job; the ordering (and its windows) differs per ordering and seed
    assert len({Lineage(cfg).key("pretrain") for cfg in jobs.values()}) == 9
    assert len({Lineage(cfg).key("pack") for cfg in jobs.values()}) == 9
    # ... and every model is asked the same questions: the task's draw does not follow the swept seed
    first = jobs[("random", 0)]
    assert all(cfg.task == first.task and cfg.evaluate == first.evaluate for cfg in jobs.values())
    assert first.task.seed == 0 and first.pretrain.seed == 0 and jobs[("iclm", 2)].pretrain.seed == 2
    # The setting the comparison needs: several short documents per context window
    assert first.model.max_seq_len == 512 and first.data.document_length == 64
    assert max(first.evaluate.shots) * (first.task.example_length + 1) < first.model.max_seq_len


def test_a_tiny_orderings_sweep_writes_one_curve_per_ordering(in_tmp):
    tmp_path = in_tmp
    tiny = [
        "data.n_documents=800", "data.document_length=15",          # 16-token documents,
        "model.max_seq_len=128",                                      # 8 to a window
        "pretrain.max_steps=4", "pretrain.batch_size=2", "pretrain.val_every=4", "pretrain.val_windows=2",
        "pretrain.checkpoint_every=4", "pretrain.samples.n=0",
        "task.n_queries=8", "task.pool_per_group=4", "evaluate.shots=[0,2]", "trainer.enable_progress_bar=false",
    ]
    # Command-line sweeps win over the preset's: two orderings, one seed
    code = run_cli(["-m", "experiment=clustered_icl", "sweep=orderings", "data/order=random,iclm", "seed=0",
                    *tiny, f"hydra.sweep.dir={tmp_path}/sweep"])
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "summary.csv")))
    assert [(r["data/order"], r["status"]) for r in rows] == [("random", "ok"), ("iclm", "ok")]
    for row in rows:  # both prompt formats, every k
        for variant, k in itertools.product(("standard", "eos_separated"), (0, 2)):
            assert 0.0 <= float(row[f"evaluate/{variant}/accuracy_k{k}"]) <= 1.0
    share = {r["data/order"]: float(r["pack/order/window_concept_share"]) for r in rows}
    assert share["iclm"] > share["random"]
    assert (tmp_path / "sweep" / "summary.png").stat().st_size > 5000
