"""Bring your own task (issue 12): records -> examples by config, verbalizer semantics, ids.

Each test here fails on the code before issue 12 (templates over fields, label patterns,
multiple choice, ``task=hf``, the verbalizer checks and override rule, ids per path did not exist
or behaved otherwise) and passes after.
"""

from __future__ import annotations

import json

import pytest
import yaml

from iclx.cli import run_cli
from iclx.errors import ConfigError, DataError
from iclx.tasks.base import load_task
from iclx.tasks.icl import check_pool_size


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


NEWS = (
    "Class Index,Title,Description\n"
    '3,Stocks rally,"Markets rose on Tuesday, led by banks."\n'
    "2,Home win,The hosts won 3-1 in the final minute.\n"
    "4,New chip,A faster processor was announced.\n"
    "1,Summit ends,Leaders agreed on a joint statement.\n"
)
NEWS_LABELS = {1: "World", 2: "Sports", 3: "Business", 4: "Technology"}


@pytest.fixture
def news(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text(NEWS)
    return path


def news_cfg(path, **extra):
    return {"name": "csv", "pool": str(path), "queries": str(path), "doc_to_text": "{{Title}}. {{Description}}",
            "label_field": "Class Index", "verbalizer": NEWS_LABELS, **extra}


# --- 1. templates over any fields, labels by field, pattern or choice --------------------------


def test_doc_to_text_is_a_template_over_any_fields_of_a_record(news):
    task = load_task(news_cfg(news))
    assert task.pool[0].input == "Stocks rally. Markets rose on Tuesday, led by banks."
    assert [e.output for e in task.pool] == ["Business", "Sports", "Technology", "World"]
    assert task.labels == ["World", "Sports", "Business", "Technology"]  # the verbalizer's order
    # doc_to_target: a template for the label (one expression keeps the field's type)
    task = load_task(news_cfg(news, doc_to_target="{{ Title.split()[0] }}", verbalizer=None))
    assert [e.output for e in task.pool] == ["Stocks", "Home", "New", "Summit"]


def test_an_unknown_template_field_is_one_config_error_naming_the_fields_that_exist(news, tmp_path):
    with pytest.raises(ConfigError) as e:
        load_task(news_cfg(news, doc_to_text="{{Titel}}. {{Description}}"))
    assert str(e.value) == (f"{news}:2: no field 'Titel' (task.doc_to_text: '{{{{Titel}}}}. {{{{Description}}}}'); the record has: "
                            "Class Index, Title, Description (did you mean 'Title'?)")
    # a later record without the field: a data error naming it
    path = write_jsonl(tmp_path / "q.jsonl", [{"q": "a?", "label": "x"}, {"question": "b?", "label": "y"}])
    with pytest.raises(DataError, match=r"q\.jsonl:2: no field 'q' \(task\.doc_to_text: '\{\{q\}\}'\); the record has: question, label$"):
        load_task({"name": "jsonl", "pool": str(path), "queries": str(path), "doc_to_text": "{{q}}"})


def test_a_template_syntax_error_is_one_line_naming_the_key(news):
    with pytest.raises(ConfigError) as e:
        load_task(news_cfg(news, doc_to_text="{{Title}. {{Description}}"))
    assert str(e.value).startswith("task.doc_to_text: template syntax error at line 1: ")
    assert "\n" not in str(e.value)


def test_templates_are_sandboxed(news):
    with pytest.raises(DataError, match=r"news\.csv:2: task\.doc_to_text: SecurityError"):
        load_task(news_cfg(news, doc_to_text="{{ Title.__class__.__mro__[1].__subclasses__() }}"))


def test_template_formats_know_input_and_output_only(news):
    """A field in the prompt template (``{Title}``) was a KeyError with a traceback."""
    with pytest.raises(ConfigError) as e:
        load_task(news_cfg(news, template={"input_format": "Title: {Title}\n"}))
    assert str(e.value).startswith("task.template.input_format: unknown placeholder {Title} in 'Title: {Title}\\n'; it knows {input}. "
                                   "A record's fields go in task.doc_to_text")
    with pytest.raises(ConfigError, match=r"^task\.template\.output_format: .*in 'A: \{output'"):
        load_task(news_cfg(news, template={"output_format": "A: {output"}))


TREC = (
    "DESC:manner How did serfdom develop in and then leave Russia ?\n"
    "ENTY:cremat What films featured the character Popeye Doyle ?\n"
    "HUM:ind What team did baseball 's St. Louis Browns become ?\n"
    "DESC:def What is an atom ?\n"
)


def test_a_label_pattern_takes_the_coarse_label_and_the_rest_of_the_line_is_the_input(tmp_path):
    path = tmp_path / "trec.txt"
    path.write_text(TREC)
    task = load_task({"name": "label_text", "pool": str(path), "queries": str(path), "label_pattern": r"^(\w+):\S+"})
    assert [(e.output, e.input) for e in task.pool][:2] == [
        ("DESC", "How did serfdom develop in and then leave Russia ?"), ("ENTY", "What films featured the character Popeye Doyle ?")]
    assert task.labels == ["DESC", "ENTY", "HUM"]
    # as the brief writes it: the fine label stays in the text; a named group works too
    task = load_task({"name": "label_text", "pool": str(path), "queries": str(path), "label_pattern": r"^(?P<label>\w+):"})
    assert task.pool[3].output == "DESC" and task.pool[3].input == "def What is an atom ?"
    # a label at the end of the line
    path.write_text("a fine film\t1\na dull one\t0\n")
    task = load_task({"name": "label_text", "pool": str(path), "queries": str(path), "label_pattern": r"\t(\d)$",
                      "verbalizer": {0: "negative", 1: "positive"}})
    assert [(e.input, e.output) for e in task.pool] == [("a fine film", "positive"), ("a dull one", "negative")]


def test_a_label_pattern_over_a_label_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "DESC:manner"}, {"text": "b", "label": "HUM:ind"}])
    task = load_task({"name": "jsonl", "pool": str(path), "queries": str(path), "label_pattern": "^([A-Z]+):"})
    assert [e.output for e in task.pool] == ["DESC", "HUM"]
    write_jsonl(path, [{"text": "a", "label": "DESC:manner"}, {"text": "b", "label": "other"}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: task\.label_pattern '\^\(\[A-Z\]\+\):' does not match the label 'other'$"):
        load_task({"name": "jsonl", "pool": str(path), "queries": str(path), "label_pattern": "^([A-Z]+):"})


def test_bad_label_patterns_are_one_line(tmp_path):
    path = tmp_path / "trec.txt"
    path.write_text(TREC)
    cfg = {"name": "label_text", "pool": str(path), "queries": str(path)}
    with pytest.raises(ConfigError) as e:
        load_task({**cfg, "label_pattern": r"^\w+:"})
    assert str(e.value) == "task.label_pattern: '^\\w+:' has no group: put the label in parentheses, e.g. '^(\\w+):'"
    with pytest.raises(ConfigError, match=r"^task\.label_pattern: '\(\\w\+' is not a valid regular expression"):
        load_task({**cfg, "label_pattern": r"(\w+"})
    with pytest.raises(DataError) as e:
        load_task({**cfg, "label_pattern": r"^(\d+)\t"})
    assert str(e.value) == (f"task.label_pattern '^(\\d+)\\t' matches no line of {path} "
                            "(line 1: 'DESC:manner How did serfdom develop in and then leave Russia')")  # 60 characters
    path.write_text(TREC + "no label here\n")
    with pytest.raises(DataError) as e:
        load_task({**cfg, "label_pattern": r"^([A-Z]+):\S+"})
    assert str(e.value) == f"{path}:5: task.label_pattern '^([A-Z]+):\\S+' does not match 'no label here' (1 of 5 lines do not match)"


MC = [
    {"question": "Which is a fruit?", "choices": ["stone", "apple", "chair"], "answer": 1},
    {"question": "Which one flies?", "choices": ["bird", "fish", "rock"], "answer": 0},
    {"question": "Which is cold?", "choices": ["fire", "sun", "ice"], "answer": "ice"},
]


def test_multiple_choice_with_one_label_set(tmp_path):
    """``doc_to_choice`` as a list: letters the prompt lists the options by (MMLU-style); the
    label is a choice or its index."""
    path = write_jsonl(tmp_path / "mc.jsonl", [{**r, "answer": i % 3} for i, r in enumerate(MC)] + [{**MC[0], "answer": "B"}])
    template = "{{question}}{% for c in choices %} {{ 'ABC'[loop.index0] }}. {{c}}{% endfor %}"
    task = load_task({"name": "jsonl", "pool": str(path), "queries": str(path), "doc_to_text": template,
                      "doc_to_target": "{{answer}}", "doc_to_choice": ["A", "B", "C"]})
    assert task.labels == ["A", "B", "C"] and not task.multiple_choice
    assert task.pool[0].input == "Which is a fruit? A. stone B. apple C. chair"
    assert [e.output for e in task.pool] == ["A", "B", "C", "B"]
    write_jsonl(path, [{**MC[0], "answer": 7}])
    with pytest.raises(DataError, match=r"^labels not one of its choices \(nor an index\) in task\.doc_to_choice: '7' \(1\)"):
        load_task({"name": "jsonl", "pool": str(path), "queries": str(path), "doc_to_text": "{{question}}",
                   "doc_to_target": "{{answer}}", "doc_to_choice": ["A", "B", "C"]})


def test_multiple_choice_with_each_querys_own_choices(tmp_path):
    """``doc_to_choice`` as a template: every example carries its own choices (Example.choices),
    the output is the gold one; the task has no one label set."""
    path = write_jsonl(tmp_path / "mc.jsonl", MC)
    cfg = {"name": "jsonl", "pool": str(path), "queries": str(path), "doc_to_text": "Q: {{question}}",
           "doc_to_target": "{{answer}}", "doc_to_choice": "{{choices}}"}
    with pytest.raises(ConfigError, match=r"^task\.doc_to_choice gives each query its own choices"):
        load_task(cfg)  # a caller that scores one label set for all queries must not get this task
    task = load_task(cfg, per_query_choices=True)
    assert task.multiple_choice and task.labels is None and not task.open_ended
    assert [(q.choices, q.output) for q in task.queries] == [
        (["stone", "apple", "chair"], "apple"), (["bird", "fish", "rock"], "bird"), (["fire", "sun", "ice"], "ice")]
    assert task.choices_of(task.queries[0]) == ["stone", "apple", "chair"]
    assert task.queries[0].label == "apple" and task.queries[0].input == "Q: Which is a fruit?"
    write_jsonl(path, [{**MC[0], "answer": "pear"}])
    with pytest.raises(DataError, match=r"mc\.jsonl:1: the label 'pear' is neither one of the record's 3 choices"):
        load_task(cfg, per_query_choices=True)
    with pytest.raises(DataError, match=r"must give a non-empty list of choices, got 'choices' \(for the field choices, write '\{\{choices\}\}'\)"):
        load_task({**cfg, "doc_to_choice": "choices"}, per_query_choices=True)


def test_hf_task_reads_local_datasets_and_parquet(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"title": datasets.Value("string"), "body": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["World", "Sports"])})
    rows = {"title": ["Summit", "Final", "Treaty", "Derby"], "body": ["Leaders met.", "A late goal.", "Signed.", "A draw."],
            "label": [0, 1, 0, 1]}
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features),
                               "validation": datasets.Dataset.from_dict({k: v[:2] for k, v in rows.items()}, features=features)})
    dd.save_to_disk(str(tmp_path / "news"))
    task = load_task({"name": "hf", "pool": str(tmp_path / "news"), "doc_to_text": "{{title}}: {{body}}"})
    assert [(e.input, e.output) for e in task.queries] == [("Summit: Leaders met.", "World"), ("Final: A late goal.", "Sports")]
    assert task.labels == ["World", "Sports"]  # the ClassLabel's names verbalize it
    assert task.pool[0].id == f"{tmp_path / 'news'}[train]:0" and task.queries[0].id == f"{tmp_path / 'news'}[validation]:0"
    assert not task.shared_split
    same = load_task({"name": "hf", "pool": str(tmp_path / "news"), "queries_split": "train", "input_field": "title"})
    assert same.shared_split and [e.id for e in same.pool] == [q.id for q in same.queries]
    with pytest.raises(ConfigError, match=r"^task\.queries_split: .*news has no split 'test' \(its splits: train, validation\)$"):
        load_task({"name": "hf", "pool": str(tmp_path / "news"), "queries_split": "test"})
    dd["train"].to_parquet(str(tmp_path / "train.parquet"))
    task = load_task({"name": "hf", "pool": str(tmp_path / "train.parquet"), "input_field": "title",
                      "verbalizer": {0: "world", 1: "sport"}})
    assert [e.output for e in task.pool] == ["world", "sport", "world", "sport"] and task.pool[1].id.endswith("train.parquet:1")
    with pytest.raises(DataError, match=r"^task\.pool: no such file or folder .*nope$"):
        load_task({"name": "hf", "pool": str(tmp_path / "nope")})


# --- 2. verbalizers: checked against the data; a command-line one replaces the preset's --------


def test_labels_without_an_entry_and_entries_never_seen_are_an_error_with_counts(tmp_path):
    path = tmp_path / "trec.txt"
    path.write_text(TREC)
    cfg = {"name": "label_text", "pool": str(path), "queries": str(path), "label_pattern": r"^(\w+):\S+"}
    with pytest.raises(DataError) as e:  # SST-2's verbalizer left in place: the issue's accuracy-0 run
        load_task({**cfg, "verbalizer": {0: "negative", 1: "positive", "DESC": "description"}})
    assert str(e.value) == (
        f"labels without an entry in task.verbalizer: 'ENTY' (1), 'HUM' (1) (first at {path}:2); entries of task.verbalizer "
        "that no record has: 0 (negative), 1 (positive); the data's labels: 'DESC' (2), 'ENTY' (1), 'HUM' (1); map exactly "
        "these (task.verbalizer={...} on the command line replaces the preset's), or set task.unmapped_labels=warn")


def test_unmapped_labels_warn_drops_them_with_counts(tmp_path):
    path = tmp_path / "trec.txt"
    path.write_text(TREC)
    cfg = {"name": "label_text", "pool": str(path), "queries": str(path), "label_pattern": r"^(\w+):\S+",
           "verbalizer": {"DESC": "description", "HUM": "human", "LOC": "location"}, "unmapped_labels": "warn"}
    with pytest.warns(UserWarning) as caught:
        task = load_task(cfg)
    assert str(caught[0].message) == (
        f"labels without an entry in task.verbalizer: 'ENTY' (1) (first at {path}:2); entries of task.verbalizer that no "
        "record has: LOC (location); the data's labels: 'DESC' (2), 'ENTY' (1), 'HUM' (1) (1 record dropped: "
        "task.unmapped_labels=warn)")
    assert [e.output for e in task.pool] == ["description", "human", "description"]
    assert task.labels == ["description", "human", "location"]
    with pytest.warns(UserWarning), pytest.raises(DataError, match=r"^task\.pool: no examples left in .*trec\.txt"):
        load_task({**cfg, "verbalizer": {"LOC": "location"}})  # an empty pool after filtering
    with pytest.raises(ConfigError, match=r"task\.unmapped_labels must be one of 'error', 'warn'"):
        load_task({**cfg, "unmapped_labels": "ignore"})


@pytest.mark.parametrize("form", ["+task.verbalizer={DESC: description, HUM: human}",
                                  "++task.verbalizer={DESC: description, HUM: human}",
                                  "task.verbalizer={DESC: description, HUM: human}"])
def test_a_command_line_verbalizer_replaces_the_presets(in_tmp, form):
    """Hydra merges a mapping into the preset's: ``+``/``++`` kept SST-2's 0/1 entries beside the
    new ones, the plain form failed. Every form now sets exactly the command line's mapping."""
    code = run_cli(["plugins=[iclx_test_plugin]", "stages=[echo]", "task=sst2", form, f"hydra.run.dir={in_tmp}/run"])
    assert code == 0
    config = yaml.safe_load((in_tmp / "run" / ".hydra" / "config.yaml").read_text())
    assert config["task"]["verbalizer"] == {"DESC": "description", "HUM": "human"}


def test_one_verbalizer_entry_still_adds_to_the_presets(in_tmp):
    code = run_cli(["plugins=[iclx_test_plugin]", "stages=[echo]", "task=sst2", "+task.verbalizer.2=neutral",
                    f"hydra.run.dir={in_tmp}/run"])
    assert code == 0
    config = yaml.safe_load((in_tmp / "run" / ".hydra" / "config.yaml").read_text())
    assert config["task"]["verbalizer"] == {0: "negative", 1: "positive", "2": "neutral"}


# --- 3. ids unique per file path ---------------------------------------------------------------


def test_ids_are_unique_per_path_and_one_file_keeps_one_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pool = write_jsonl(tmp_path / "pool" / "data.jsonl", [{"text": f"p{i}", "label": "a"} for i in range(2)])
    write_jsonl(tmp_path / "queries" / "data.jsonl", [{"text": f"q{i}", "label": "a"} for i in range(2)])
    task = load_task({"name": "jsonl", "pool": "pool/data.jsonl", "queries": "queries/data.jsonl"})
    assert [e.id for e in task.pool] == ["pool/data.jsonl:1", "pool/data.jsonl:2"]
    assert [q.id for q in task.queries] == ["queries/data.jsonl:1", "queries/data.jsonl:2"]
    assert not task.shared_split
    check_pool_size(task, list(range(len(task.pool))), task.queries, 2, None)  # "offers only 1" before
    # one file, spelled two ways: one id per line, so a query is never its own demonstration
    task = load_task({"name": "jsonl", "pool": "pool/data.jsonl", "queries": str(pool)})
    assert [e.id for e in task.pool] == [q.id for q in task.queries] and task.shared_split


# --- 4. bad input stops the run before any stage -----------------------------------------------


def test_a_bad_task_stops_the_run_before_pretraining(in_tmp, capsys):
    path = in_tmp / "news.csv"
    path.write_text(NEWS)
    code = run_cli(["task=csv", f"task.pool={path}", f"task.queries={path}", "task.doc_to_text='{{Titel}}'",
                    f"hydra.run.dir={in_tmp}/run"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"iclx: {path}:2: no field 'Titel' (task.doc_to_text: '{{{{Titel}}}}'); the record has: Class Index, "
                   "Title, Description (did you mean 'Title'?)"]
    summary = json.loads((in_tmp / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and not summary.get("stages")
    assert not (in_tmp / "cache").exists()  # nothing was tokenized or trained


def test_k_larger_than_the_pool_stops_the_run_before_pretraining(in_tmp, capsys):
    path = write_jsonl(in_tmp / "d.jsonl", [{"text": f"t{i}", "label": "a"} for i in range(3)])
    code = run_cli(["task=jsonl", f"task.pool={path}", f"task.queries={path}", "evaluate.shots=[0,8]",
                    f"hydra.run.dir={in_tmp}/run"])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "iclx: evaluate.shots: k=8 demonstrations per query, but the pool offers only 2"]  # one is the query itself
    assert not (in_tmp / "cache").exists()


def test_the_evaluate_stage_gets_the_task_the_precheck_read_once(tmp_path):
    from iclx.tasks.base import precheck_task

    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    cfg = {"name": "jsonl", "pool": str(path), "queries": str(path)}
    read = precheck_task(cfg)
    write_jsonl(path, [{"text": "c", "label": "x"}, {"text": "d", "label": "y"}])
    handed = load_task(cfg)  # the task read before the stages ran, as a copy
    assert [e.input for e in handed.pool] == ["a", "b"] and handed.pool is not read.pool
    assert [e.input for e in load_task(cfg).pool] == ["c", "d"]  # once only: later loads read the files
