"""A plugin module for the CLI tests: `plugins=[iclx_test_plugin]` registers these stages."""

from iclx.errors import DataError
from iclx.registry import register


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
