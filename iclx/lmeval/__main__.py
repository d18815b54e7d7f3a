"""``python -m iclx.lmeval ...``: lm-evaluation-harness's command line with the ``iclx`` model
registered, e.g. ``python -m iclx.lmeval run --model iclx --model_args path=RUN_DIR --tasks lambada_openai``."""

from lm_eval.__main__ import cli_evaluate

import iclx.lmeval  # noqa: F401 -- registers the model `iclx`

cli_evaluate()
