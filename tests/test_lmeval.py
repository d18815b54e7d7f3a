"""The lm-evaluation-harness adapter (``iclx[lmeval]``): lm-eval's own command line, with the model
``iclx``, runs three tiny local tasks offline (multiple choice, rolling log-likelihood, generation)
and gets iclx's own numbers: the evaluate stage's label scores, iclx's continuation scorer, and
iclx's greedy generation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iclx.models.bundle import load_model, save_model
from iclx.registry import build

from conftest import ROOT

pytest.importorskip("lm_eval")

TOLERANCE = 1e-4
DOCS = [
    {"text": "good movie", "label": 1}, {"text": "bad film", "label": 0}, {"text": "good film", "label": 1},
    {"text": "bad movie the cat sat on the mat and the dog ran to the park and back " * 3, "label": 0},  # > max_seq_len
]
CORPUS = ["Input: good movie\nOutput: positive", "Input: bad film\nOutput: negative", "the cat sat on the mat and the dog ran to the park and back"]
TASKS = {
    "iclx_tiny_mc": """
output_type: multiple_choice
doc_to_text: "Input: {{text}}\\nOutput:"
doc_to_choice: ["negative", "positive"]
doc_to_target: label
metric_list:
  - metric: acc
""",
    "iclx_tiny_rolling": """
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{text}}"
metric_list:
  - metric: word_perplexity
""",
    "iclx_tiny_gen": """
output_type: generate_until
doc_to_text: "Input: {{text}}\\nOutput:"
doc_to_target: "{{['negative', 'positive'][label]}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
""",
}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny model bundle, the local tasks, and lm-eval's per-sample log of running them."""
    tmp = tmp_path_factory.mktemp("lmeval")
    tokenizer = build("tokenizer", {"name": "word"})
    tokenizer.train(CORPUS)
    torch.manual_seed(0)
    model = build("model", {"name": "gpt", "max_seq_len": 24, "n_layer": 2, "n_head": 2, "d_model": 32}, vocab_size=tokenizer.vocab_size)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    save_model(tmp / "model", model.eval(), tokenizer)
    data = tmp / "data.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (tmp / "tasks").mkdir()
    source = f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
    for name, body in TASKS.items():
        (tmp / "tasks" / f"{name}.yaml").write_text(f"task: {name}\n{source}{body}")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp / "hf_datasets"),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "iclx.lmeval", "run", "--model", "iclx", "--model_args", f"path={tmp / 'model'}", "--batch_size", "3",
         "--tasks", ",".join(TASKS), "--include_path", str(tmp / "tasks"), "--output_path", str(tmp / "out"), "--log_samples"],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    samples = {name: [json.loads(line) for f in (tmp / "out").rglob(f"samples_{name}_*.jsonl") for line in f.read_text().splitlines()]
               for name in TASKS}
    results = json.loads(next((tmp / "out").rglob("results_*.json")).read_text())["results"]
    return tmp, samples, results


def by_doc(rows: list[dict]) -> list[dict]:
    assert len(rows) == len(DOCS)
    return sorted(rows, key=lambda r: r["doc_id"])


def test_multiple_choice_loglikelihoods_equal_the_evaluate_stage_scores(evaluated):
    from iclx.tasks.base import load_task
    from iclx.tasks.icl import ICLEvaluator, ScoringSettings
    from iclx.tasks.scoring import continuation_logprobs

    tmp, samples, results = evaluated
    model, tokenizer = load_model(tmp / "model")
    task = load_task({"name": "jsonl", "pool": str(tmp / "data.jsonl"), "queries": str(tmp / "data.jsonl"),
                      "verbalizer": {0: "negative", 1: "positive"},
                      "template": {"input_format": "Input: {input}\n", "output_format": "Output: {output}"}})
    evaluator = ICLEvaluator(model, tokenizer, task, ScoringSettings(), max_tokens=model.max_seq_len)  # prompt_start: eos
    ours = evaluator.evaluate([[] for _ in task.queries], 0)  # k=0: the query alone, as the lm-eval task
    diffs, cut = [], 0
    for row, result, doc in zip(by_doc(samples["iclx_tiny_mc"]), ours, DOCS):
        theirs = [float(ll) for ll, _ in row["filtered_resps"]]
        context = [tokenizer.eos_id] + tokenizer.encode(f"Input: {doc['text']}\nOutput:")
        if len(context) < model.max_seq_len:  # it fits: the evaluate stage's own scores
            expected = [result.scores[label] for label in ("negative", "positive")]
        else:  # cut on the left to max_seq_len tokens of input, as lm-eval's HF models do (the evaluate
            # stage keeps one token less: it reserves the longest label's room); iclx's scorer on that context
            cut += 1
            labels = [tokenizer.encode(" negative"), tokenizer.encode(" positive")]
            expected = list(continuation_logprobs(model, [context[-(model.max_seq_len + 1 - len(y)):] for y in labels], labels))
        diffs += [abs(t - e) for t, e in zip(theirs, expected)]
    assert cut == 1
    print(f"multiple choice: max |log-likelihood difference| {max(diffs):.3g}")
    assert max(diffs) <= TOLERANCE
    fits = [r.correct for r, d in zip(ours, DOCS) if len(d["text"]) < 100]
    assert [bool(row["acc"]) for row, d in zip(by_doc(samples["iclx_tiny_mc"]), DOCS) if len(d["text"]) < 100] == fits
    assert 0 <= results["iclx_tiny_mc"]["acc,none"] <= 1


def test_rolling_loglikelihoods_equal_iclx_scores_of_the_same_windows(evaluated):
    from lm_eval import utils

    from iclx.tasks.scoring import continuation_logprobs

    tmp, samples, _ = evaluated
    model, tokenizer = load_model(tmp / "model")
    diffs, windows = [], 0
    for row, doc in zip(by_doc(samples["iclx_tiny_rolling"]), DOCS):
        ids = tokenizer.encode(doc["text"])
        pairs = [utils.make_disjoint_window(w) for w in utils.get_rolling_token_windows(ids, tokenizer.eos_id, model.max_seq_len, 1)]
        windows += len(pairs)
        ours = continuation_logprobs(model, [c for c, _ in pairs], [t for _, t in pairs]).sum()
        if len(ids) < model.max_seq_len:  # one window: the text after EOS, as a document begins in pre-training
            assert ours == pytest.approx(continuation_logprobs(model, [[tokenizer.eos_id]], [ids])[0], abs=1e-9)
        diffs.append(abs(float(row["filtered_resps"][0]) - ours))
    assert windows > len(DOCS)  # the long document took several windows
    print(f"rolling: max |log-likelihood difference| {max(diffs):.3g}")
    assert max(diffs) <= TOLERANCE


def test_generation_equals_iclx_greedy_generation(evaluated):
    tmp, samples, _ = evaluated
    model, tokenizer = load_model(tmp / "model")
    for row, doc in zip(by_doc(samples["iclx_tiny_gen"]), DOCS):
        prompt = [tokenizer.eos_id] + tokenizer.encode(f"Input: {doc['text']}\nOutput:")
        out = model.generate(torch.tensor(prompt[-model.max_seq_len:]), 6, temperature=0, eos_id=tokenizer.eos_id)
        new = [int(i) for i in out[len(prompt[-model.max_seq_len:]):] if int(i) != tokenizer.eos_id]
        expected = tokenizer.decode(new).split("\n")[0]
        assert row["filtered_resps"][0] == expected


def test_the_adapter_answers_lm_eval_requests_in_process(evaluated):
    from types import SimpleNamespace

    import lm_eval.api.registry

    from iclx.lmeval import IclxLM
    from iclx.tasks.scoring import continuation_logprobs

    tmp, _, _ = evaluated
    assert lm_eval.api.registry.get_model("iclx") is IclxLM
    lm = IclxLM.create_from_arg_string(f"path={tmp / 'model'},prompt_start=none", {"batch_size": 2, "device": "cpu"})
    model, tokenizer = load_model(tmp / "model")
    (ll, greedy), (empty_ll, _) = lm.loglikelihood([SimpleNamespace(args=("Input: good movie\nOutput:", " positive")),
                                                    SimpleNamespace(args=("", "good movie"))])
    context = tokenizer.encode("Input: good movie\nOutput:")  # prompt_start=none: no EOS in front
    expected = continuation_logprobs(model, [context, [tokenizer.eos_id]], [tokenizer.encode(" positive"), tokenizer.encode("good movie")])
    assert abs(ll - expected[0]) <= TOLERANCE and abs(empty_ll - expected[1]) <= TOLERANCE  # an empty context: EOS
    assert isinstance(greedy, bool)
    sampled = lm.generate_until([SimpleNamespace(args=("Input: good", {"until": ["\n"], "max_gen_toks": 4, "do_sample": True,
                                                                        "temperature": 1.0}))])
    assert isinstance(sampled[0], str) and "\n" not in sampled[0]
    with pytest.raises(Exception, match="prompt_start must be eos or none"):
        IclxLM(path=str(tmp / "model"), prompt_start="bos")


def test_readme_points_at_the_adapter():
    text = (ROOT / "README.md").read_text()
    assert "python -m iclx.lmeval run --model iclx" in text and "iclx[lmeval]" in text


def test_pyproject_declares_the_extra():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(r.startswith("lm-eval") for r in project["optional-dependencies"]["lmeval"])
    assert "lmeval" in project["optional-dependencies"]["all"][0]
    assert Path(ROOT / "iclx" / "lmeval" / "__main__.py").is_file()
