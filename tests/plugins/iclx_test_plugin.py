"""A plugin module for the tests: `plugins=[iclx_test_plugin]` registers these stages and selectors."""

from iclx.errors import DataError
from iclx.registry import register
from iclx.selectors.base import Selector


@register("stage", "echo")
def echo(run):
    """Logs and returns a number made from the seed, so tests can check it reaches summaries."""
    value = 2 * run.seed + 1
    run.log_metrics({"echo/value": value})
    return {"value": value, "seed": run.seed}


@register("stage", "fail_on_seed")
def fail_on_seed(run):
    if run.seed == int(run.cfg.get("bad_seed", -1)):
        raise DataError(f"seed {run.seed} is the bad seed")
    return {"passed": 1}


@register("stage", "plot")
def plot(run):
    """Saves one figure and one table, to check they reach the run folder and W&B."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [1.0, 0.5, 0.25])
    run.save_figure(fig, "curve")
    run.log_table("plot/table", ["x", "y"], [[0, 1.0], [1, 0.5]])
    run.log_metrics({"plot/y_last": 0.25}, step=2)
    return {"y_last": 0.25}


@register("selector", "test_only")
class TestOnlySelector:
    """A component with typed parameters, to check build()'s checks against a signature."""

    def __init__(self, k: int, mode: str = "fast", weights: list[float] | None = None):
        self.k, self.mode, self.weights = k, mode, weights


@register("stage", "exit_on_seed")
def exit_on_seed(run):
    """Kills the whole process (as a kill -9 of a sweep's parent would) on $ICLX_TEST_EXIT_SEED, so
    tests can interrupt a sweep after some jobs without changing its config."""
    import os

    if str(run.seed) == os.environ.get("ICLX_TEST_EXIT_SEED"):
        os._exit(9)
    return {"passed": 1}


@register("selector", "in_order")
class InOrderSelector(Selector):
    """A plugin selector (with conf/selector/in_order.yaml beside it): the pool in its own order,
    starting at ``offset``, the query itself left out. Shows a new selector needs one module + one YAML."""

    def __init__(self, offset: int = 0):
        self.offset = offset

    def _fit(self) -> None:
        pass

    def _select(self, queries, k):
        order = [(self.offset + i) % len(self.pool) for i in range(len(self.pool))]
        return [[i for i in order if i != self.own_index(query)][:k] for query in queries]


@register("stage", "sleep")
def sleep(run):
    """Sleeps ``sleep_seconds`` (default 60), so tests can interrupt a run mid-stage."""
    import time

    (run.out_dir / "sleeping").write_text("")
    time.sleep(float(run.cfg.get("sleep_seconds", 60)))
    return {"slept": 1}


from iclx.curate.steps.base import DocStep  # noqa: E402 -- light: no datatrove until a curation runs


@register("curate_step", "explode")
class Explode(DocStep):
    """A curation step that fails on documents holding BOOM: a per-document failure."""

    def judge(self, doc):
        if "BOOM" in doc.text:
            raise RuntimeError("the step broke on this document")
        return None
