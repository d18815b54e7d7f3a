"""Every key is checked before any stage runs: one stderr line naming the key path, nothing built.

Each case runs the full pipeline's stages (tokenize, pack, pretrain, evaluate) with one bad
override; the check must stop it before tokenizing, so no artifact, not even a ``.partial``
folder, appears in the cache and the summary records no stage.
"""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from iclx import config_check, registry
from iclx.cli import conf_dir, run_cli
from iclx.config_check import validate_config
from iclx.errors import ConfigError
from iclx.sections import SECTIONS, EvaluateSection, PretrainSection

from conftest import compose_config, read_summary

PIPELINE = "stages=[tokenize,pack,pretrain,evaluate]"
SELECTORS = "{known selectors}"  # filled in when the test runs: plugins loaded by other tests add some

CASES = [
    (["data/order=iclm", "data.order.embedder.name=hashng"],
     "iclx: unknown embedder 'hashng' (data.order.embedder.name). Known: hashing, lm, minilm (did you mean 'hashing'?)"),
    (["selector=knn", "+selector.embedder.dimm=5"],
     ("iclx: embedder 'hashing' has no parameter 'dimm' (selector.embedder.dimm). "
     "Its parameters: dim, word_ngrams, char_ngrams, lowercase, idf, batch_size (did you mean 'dim'?)")),
    (["selector=epr", "+selector.optimizer.lrr=0.1"],
     ("iclx: optimizer 'adamw' has no parameter 'lrr' (selector.optimizer.lrr). "
     "Its parameters: lr, betas, eps, weight_decay, fused (did you mean 'lr'?)")),
    (["selector=epr", "selector.optimizer.name=adamm"],
     "iclx: unknown optimizer 'adamm' (selector.optimizer.name). Known: adafactor, adagrad, adam, adamw, sgd (did you mean 'adam'?)"),
    (["data/order=iclm", "+data.order.index.nprob=3"],
     ("iclx: kNN index has no parameter 'nprob' (data.order.index.nprob). "
     "Its parameters: exact_below, factory, nprobe, ef_search (did you mean 'nprobe'?)")),
    (["evaluate.selectors=[knn,mmmr]"],
     f"iclx: evaluate.selectors[1]: unknown selector 'mmmr'. Known: {SELECTORS} (did you mean 'mmr'?)"),
    (["evaluate.selectors=[{name:knn,topk:3}]"],
     "iclx: selector 'knn' has no parameter 'topk' (evaluate.selectors[0].topk). Its parameters: embedder, index, nprobe"),
    (["evaluate.variants={ood:{spit:ood}}"],
     ("iclx: task 'ginc' has no parameter 'spit' (evaluate.variants.ood.spit). Its parameters: "
     "split, example_length, n_queries, pool, pool_per_group, pool_size, seed (did you mean 'split'?)")),
    (["evaluate.shots=[0,x]"], "iclx: evaluate.shots must be a list of int, got list [0, 'x']"),
    (["evaluate.shots=5"], "iclx: evaluate.shots must be a list of int, got int 5"),
    (["evaluate.shots=[]"], "iclx: evaluate.shots must list at least 1 item(s), got []"),
    (["evaluate.num_queries=0"], "iclx: evaluate.num_queries must be >= 1, got 0"),
    (["+evaluate.shot=[0]"],
     ("iclx: evaluate has no key 'shot' (evaluate.shot). Its keys: shots, selectors, variants, num_queries, normalization, "
     "calibration, content_free, batch_size, max_new_tokens, prompt_start, device, save_prompts, save_content_free "
     "(did you mean 'shots'?)")),
    (["pretrain.batch_size=-1"], "iclx: pretrain.batch_size must be >= 1, got -1"),
    (["+pretrain.max_step=10"],
     ("iclx: pretrain has no key 'max_step' (pretrain.max_step). Its keys: seed, batch_size, seq_len, max_steps, val_every, "
     "val_windows, checkpoint_every, resume, tokenize_workers, num_workers, checkpoint, samples (did you mean 'max_steps'?)")),
    (["pretrain.samples.top_p=1.5"], "iclx: pretrain.samples.top_p must be <= 1.0, got 1.5"),
    (["+report.metrc=probe/loss"],
     "iclx: report has no key 'metrc' (report.metrc). Its keys: metric, curve, by (did you mean 'metric'?)"),
    (["report.by=seed"], "iclx: report.by must be a list of str or null, got str 'seed'"),
    (["+selector.topk=3"], "iclx: selector 'random' has no parameter 'topk' (selector.topk). Its parameters: (none)"),
    (["tokenizer=byte", "+tokenizer.vocab_size=300"],
     "iclx: tokenizer 'byte' has no parameter 'vocab_size' (tokenizer.vocab_size). Its parameters: (none)"),
    (["model.n_layer=0"], "iclx: model.n_layer must be positive, got 0"),
    (["model.d_model=65"], "iclx: model.d_model (65) must be divisible by model.n_head (4)"),
    (["+model.vocab_size=100"], "iclx: model.vocab_size: model 'gpt' gets 'vocab_size' from iclx at run time; remove it from the config"),
    (["threads=0"], "iclx: threads must be >= 1, got 0"),
    (["force=yes"], "iclx: force must be bool, got str 'yes'"),
    (["seed=abc"], "iclx: seed must be int, got str 'abc'"),
    (["trainer.progress_interval=0"], "iclx: trainer.progress_interval must be a number of seconds > 0, got 0"),
    (["trainer.enable_progress_bar=yes"], "iclx: trainer.enable_progress_bar must be bool, got str 'yes'"),
    # issue 12: the quickstart preset's evaluate.selectors=[random, knn] used to win silently
    (["selector=bm25"], ("iclx: selector=bm25 is not evaluated: evaluate.selectors=[random, knn] decides which selectors "
                         "run; set evaluate.selectors=null to evaluate bm25 alone, or evaluate.selectors=[random,knn,bm25]")),
]


def _case_id(case) -> str:
    return " ".join(case.values[0] if hasattr(case, "values") else case[0])


@pytest.mark.parametrize(("overrides", "line"), CASES, ids=[_case_id(c) for c in CASES])
def test_a_bad_key_stops_the_run_before_any_stage(in_tmp, capsys, overrides, line):
    code = run_cli([PIPELINE, *overrides, f"hydra.run.dir={in_tmp}/run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err == [line.replace(SELECTORS, ", ".join(registry.known("selector")))]
    assert not list((in_tmp / "cache").rglob("*.partial*")) and not list((in_tmp / "cache").rglob("*"))
    assert "stages" not in read_summary(in_tmp / "run")


IMPORT_PATH = ("iclx: {}: iclx configs name components by 'name:', never by import path; "
               "for a component of your own, @register it and name its module in plugins=[...]")


@pytest.mark.parametrize(("overrides", "key"), [
    (["+selector._target_=os.system"], "selector._target_"),
    (["selector={_target_:os.system}"], "selector._target_"),
    (["+_target_=os.system"], "_target_"),
    (["evaluate.selectors=[knn,{name:mmr,_target_:os.system}]"], "evaluate.selectors[1]._target_"),
    (["-m", "+model.init={_target_:os.system},{name:x}"], "model.init._target_"),
])
def test_an_import_path_on_the_command_line_stops_iclx_before_anything(in_tmp, capsys, overrides, key):
    assert run_cli([PIPELINE, *overrides, f"hydra.run.dir={in_tmp}/run"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [IMPORT_PATH.format(key)]
    assert not (in_tmp / "run").exists() and not (in_tmp / "cache").exists()


def test_an_import_path_in_a_config_file_fails_the_job_before_any_stage(in_tmp, capsys):
    """A config folder's YAML can nest _target_ anywhere; the job fails on it before any stage."""
    (in_tmp / "conf" / "selector").mkdir(parents=True)
    (in_tmp / "conf" / "selector" / "sneaky.yaml").write_text(
        "name: knn\nembedder:\n  name: hashing\n  _target_: os.system\n  _args_: [touch pwned]\n")
    code = run_cli(["--config-dir", str(in_tmp / "conf"), PIPELINE, "selector=sneaky", f"hydra.run.dir={in_tmp}/run"])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines() == [IMPORT_PATH.format("selector.embedder._target_")]
    summary = read_summary(in_tmp / "run")
    assert summary["status"] == "failed" and "stages" not in summary
    assert not (in_tmp / "cache").exists() and not (in_tmp / "pwned").exists()


def test_hydras_own_section_may_name_targets():
    cfg = compose_config([])  # with its hydra section: callbacks and launcher by _target_
    assert any(k.endswith("_target_") for k in config_check.import_path_keys(OmegaConf.to_container(cfg.hydra)))
    validate_config(cfg)


def test_a_renamed_key_names_its_new_name(monkeypatch):
    monkeypatch.setitem(config_check.RENAMED_KEYS, "selector.ef_search", "selector.nprobe")
    cfg = compose_config(["selector=knn", "+selector.ef_search=64"])
    with pytest.raises(ConfigError, match=r"^selector\.ef_search was renamed to selector\.nprobe: write selector\.nprobe=64$"):
        validate_config(cfg)


def test_the_yaml_sets_every_section_key_and_nothing_else():
    """The stage sections' defaults live in conf/config.yaml only: the schemas have none, so the
    YAML must set each key, and every key it sets must be in the schema."""
    top = OmegaConf.load(conf_dir() / "config.yaml")
    for section in SECTIONS:
        assert set(top[section.key]) == set(section.model_fields), section.key
        assert all(field.is_required() for field in section.model_fields.values()), section.key


def test_evaluate_scoring_defaults_agree_with_the_yaml():
    """ScoringSettings keeps Python defaults for direct use; they must be the YAML's."""
    import dataclasses

    from iclx.tasks.icl import ScoringSettings

    assert EvaluateSection.from_config(compose_config(["~experiment"])).scoring_settings() == ScoringSettings()
    assert {f.name for f in dataclasses.fields(ScoringSettings)} <= set(EvaluateSection.model_fields)


def test_sections_give_the_stages_typed_values():
    cfg = compose_config(["evaluate.shots=[8,0,2,2]", "seed=5", "pretrain.seq_len=32"])
    evaluate, pretrain = EvaluateSection.from_config(cfg), PretrainSection.from_config(cfg)
    assert evaluate.sorted_shots == [0, 2, 8] and evaluate.selectors == ["random", "knn"]
    assert (pretrain.seed, pretrain.seq_len, pretrain.samples.n) == (5, 32, 3)  # ${seed} resolved
    assert registry.KINDS["selector"].section == "selector"
