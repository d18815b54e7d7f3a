"""iclx models under lm-evaluation-harness (optional extra ``iclx[lmeval]``): the model ``iclx``.

Importing this module registers the model with lm-eval's registry::

    import lm_eval
    import iclx.lmeval  # noqa: F401
    lm_eval.simple_evaluate(model="iclx", model_args="path=outputs/quickstart/<date>_<time>", tasks=["lambada_openai"])

or from the shell, lm-eval's own command line with the model registered::

    python -m iclx.lmeval run --model iclx --model_args path=RUN_DIR --tasks lambada_openai

``model_args``: ``path`` (what ``iclx export`` takes: a run folder, a model folder, a ``model.pt``
or a ``.ckpt``), ``prompt_start``
(``eos``: every context begins with EOS, as iclx's evaluate stage and pre-training documents do;
``none``), ``max_gen_toks`` (256, when a task does not say), ``cache_dir`` (a run's artifacts),
``seed`` (sampling in ``generate_until``). lm-eval's own ``--batch_size`` (16 for ``auto``) and
``--device`` (the CPU when the default cuda is not there) reach the constructor as for its models.

The three request types are computed as iclx's scorer does (``iclx.tasks.scoring``): the
log-probabilities of a continuation's tokens after its context, from one forward pass over
``context + continuation`` in right-padded batches, the context cut on the left to the model's
``max_seq_len``. ``loglikelihood_rolling`` scores a whole text in disjoint windows of
``max_seq_len`` tokens (lm-eval's rolling windows, the first conditioned on EOS);
``generate_until`` samples (greedy unless the task asks for ``do_sample``) until EOS, a stop string
or ``max_gen_toks``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from lm_eval import utils as lm_utils
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from iclx.errors import ConfigError, DataError

NAME = "iclx"
log = logging.getLogger("iclx")


@register_model(NAME)
class IclxLM(TemplateLM):
    def __init__(
        self,
        path: str,
        batch_size: int | str = 16,
        device: str | None = None,
        prompt_start: str | None = "eos",
        max_gen_toks: int = 256,
        cache_dir: str | None = None,
        seed: int = 1234,
        max_batch_size: int | None = None,  # lm-eval passes it to every model; batches here are batch_size
    ):
        super().__init__()
        from iclx.models.bundle import load_model
        from iclx.models.locate import locate_model

        prompt_start = "none" if prompt_start is None else str(prompt_start)  # lm-eval reads `none` as None
        if prompt_start not in ("eos", "none"):
            raise ConfigError(f"lm-eval model_args prompt_start must be eos or none, got {prompt_start!r}")
        self.source = locate_model(path, cache_dir)
        model, self.tokenizer = load_model(self.source)
        self._device = pick_device(device)
        self.model = model.float().to(self._device).eval()
        # "auto" (lm-eval's batch-size search) has nothing to search for on models this small: the default
        self.batch_size = 16 if str(batch_size).startswith("auto") else int(batch_size)
        self.prompt_start, self.max_gen_toks = prompt_start, int(max_gen_toks)
        self.generator = torch.Generator(device=self._device).manual_seed(int(seed))

    # --- what TemplateLM asks for ----------------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_id)

    @property
    def max_length(self) -> int:
        return int(self.model.max_seq_len)

    @property
    def tokenizer_name(self) -> str:
        return f"iclx:{self.source}"

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return list(self.tokenizer.encode(string))

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(tokens)

    def _loglikelihood_tokens(self, requests: list, disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        """Requests are ((context, continuation), context ids, continuation ids); an empty context
        arrives as [EOS] already (TemplateLM.loglikelihood), any other gets EOS in front of it when
        prompt_start is eos."""
        prefix = [self.eot_token_id] if self.prompt_start == "eos" else []
        pairs = [((prefix if strings[0] else []) + list(context), list(continuation))
                 for strings, context, continuation in requests]
        return self._score(pairs, disable_tqdm)

    # --- the three request types -------------------------------------------------------------------

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list[float]:
        windows: list[tuple[list[int], list[int]]] = []
        owners: list[int] = []
        for i, (text,) in enumerate(req.args for req in requests):
            for context, continuation in map(lm_utils.make_disjoint_window, lm_utils.get_rolling_token_windows(
                    token_list=self.tok_encode(text), prefix_token=self.eot_token_id, max_seq_len=self.max_length, context_len=1)):
                windows.append((list(context), list(continuation)))
                owners.append(i)
        totals = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, self._score(windows, disable_tqdm)):
            totals[owner] += logprob
        return totals

    @torch.no_grad()
    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        from iclx.models.causal_lm import sample_next_token

        out = []
        for context, gen_kwargs in tqdm([req.args for req in requests], desc="generate_until", disable=disable_tqdm):
            kwargs = dict(gen_kwargs or {})
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            budget = int(kwargs.pop("max_gen_toks", self.max_gen_toks))
            sample = bool(kwargs.pop("do_sample", False))
            temperature = float(kwargs.pop("temperature", 1.0 if sample else 0.0)) if sample else 0.0
            top_k, top_p = kwargs.pop("top_k", None), kwargs.pop("top_p", None)
            ids = ([self.eot_token_id] if self.prompt_start == "eos" else []) + self.tok_encode(context)
            new: list[int] = []
            text = ""
            for _ in range(budget):
                window = torch.tensor([(ids + new)[-self.max_length:]], device=self._device)
                logits = self.model(window)[:, -1, :].float()
                token = int(sample_next_token(logits, temperature, top_k, top_p, self.generator)[0])
                if token == self.eot_token_id:
                    break
                new.append(token)
                text = self.tok_decode(new)
                if any(stop in text for stop in until):
                    break
            for stop in until:  # the text ends before the first stop string
                text = text.split(stop)[0] if stop else text
            out.append(text)
        return out

    @torch.no_grad()
    def _score(self, pairs: list[tuple[list[int], list[int]]], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(sum of log p(continuation | context), whether greedy decoding gives the continuation)
        per pair: one forward over context + continuation, cut on the left to max_seq_len tokens."""
        from iclx.tasks.scoring import forward_logits, right_padded

        limit = self.max_length
        rows = []
        for context, continuation in pairs:
            if not continuation:
                raise DataError("lm-eval: a request with an empty continuation (nothing to score)")
            if len(continuation) > limit:
                raise DataError(f"lm-eval: a continuation of {len(continuation)} tokens is longer than the model's "
                                f"max_seq_len {limit}")
            rows.append((list(context) + list(continuation))[-(limit + 1):][:-1])
        results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: -len(rows[i]))  # similar lengths share a batch
        for start in tqdm(range(0, len(order), self.batch_size), desc="loglikelihood", disable=disable_tqdm):
            members = order[start:start + self.batch_size]
            ids, lengths = right_padded([rows[i] for i in members], self._device)
            logprobs = torch.log_softmax(forward_logits(self.model, ids).float(), dim=-1)
            for row, i in enumerate(members):
                targets = torch.tensor(pairs[i][1], device=self._device)
                positions = torch.arange(int(lengths[row]) - len(targets), int(lengths[row]), device=self._device)
                scores = logprobs[row, positions]
                greedy = bool((scores.argmax(dim=-1) == targets).all())
                results[i] = (float(scores[torch.arange(len(targets), device=self._device), targets].sum()), greedy)
        return results


def pick_device(device: str | None) -> torch.device:
    """The device asked for; lm-eval's command line asks for cuda by default: the CPU where there is none."""
    if device is None or (str(device).startswith("cuda") and not torch.cuda.is_available()):
        if device is not None:
            log.warning("lm-eval: device %s is not available here; the iclx model runs on the cpu", device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
