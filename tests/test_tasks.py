"""ICL task loaders, the GINC task and the prompt template."""

from __future__ import annotations

import json

import pytest

from iclx.errors import ConfigError, DataError
from iclx.tasks.base import build_template, load_task
from iclx.tasks.example import Example
from iclx.tasks.template import PromptBuilder, Template


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def sentiment_jsonl(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": f"movie {i}", "label": i % 2} for i in range(6)])
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "great", "label": 1}, {"text": "awful", "label": 0}])
    return train, test


def jsonl_cfg(pool, queries, **extra):
    return {"name": "jsonl", "pool": str(pool), "queries": str(queries), "verbalizer": {0: "negative", 1: "positive"}, **extra}


# --- loaders -------------------------------------------------------------------------------------


def test_jsonl_task_verbalizes_labels_and_keeps_file_order(sentiment_jsonl):
    train, test = sentiment_jsonl
    task = load_task(jsonl_cfg(train, test))
    assert [e.input for e in task.pool] == [f"movie {i}" for i in range(6)]
    assert [e.output for e in task.pool] == ["negative", "positive"] * 3
    assert [(q.input, q.label) for q in task.queries] == [("great", "positive"), ("awful", "negative")]
    assert task.labels == ["negative", "positive"]
    assert task.pool[0].id == f"{train}:1" and task.queries[1].id == f"{test}:2"  # the files as the config names them
    assert not task.shared_split


def test_same_file_for_pool_and_queries_gives_equal_ids(sentiment_jsonl):
    train, _ = sentiment_jsonl
    task = load_task(jsonl_cfg(train, train))
    assert task.shared_split
    assert [e.id for e in task.pool] == [q.id for q in task.queries]


def test_csv_and_tsv_read_named_columns(tmp_path):
    (tmp_path / "a.csv").write_text('review,stars\n"good, really",pos\nbad,neg\n')
    (tmp_path / "a.tsv").write_text("review\tstars\ngood\tpos\nbad\tneg\n")
    for name, delimiter in (("a.csv", ","), ("a.tsv", "\t")):
        path = tmp_path / name
        task = load_task({"name": "csv", "pool": str(path), "queries": str(path), "input_field": "review",
                          "label_field": "stars", "delimiter": delimiter})
        assert [(e.input, e.output) for e in task.pool][1] == ("bad", "neg")
        assert task.labels == ["pos", "neg"]  # no verbalizer: the label texts, in order of appearance
    assert load_task({"name": "csv", "pool": str(tmp_path / "a.csv"), "queries": str(tmp_path / "a.csv"),
                      "input_field": "review", "label_field": "stars"}).pool[0].input == "good, really"


def test_label_text_reads_sst2_shipped_with_the_package():
    task = load_task({"name": "label_text", "pool": "package:sst2/stsa.binary.train",
                      "queries": "package:sst2/stsa.binary.dev", "verbalizer": {0: "negative", 1: "positive"}})
    assert (len(task.pool), len(task.queries)) == (6920, 872)
    assert sum(e.output == "positive" for e in task.pool) == 3610  # as the data README says
    assert sum(q.label == "positive" for q in task.queries) == 444
    assert task.queries[0].input.startswith("one long string of cliches")


def test_open_ended_task_has_no_label_set(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"q": "capital of France?", "a": "Paris"}])
    task = load_task({"name": "jsonl", "pool": str(path), "queries": str(path), "input_field": "q",
                      "label_field": "a", "open_ended": True})
    assert task.open_ended and task.queries[0].output == "Paris" and task.queries[0].label is None


def test_max_queries_is_a_seeded_subset_in_file_order(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": str(i), "label": "x"} for i in range(50)])
    first = load_task({"name": "jsonl", "pool": str(path), "queries": str(path), "max_queries": 10})
    again = load_task({"name": "jsonl", "pool": str(path), "queries": str(path), "max_queries": 10})
    other = load_task({"name": "jsonl", "pool": str(path), "queries": str(path), "max_queries": 10, "seed": 1})
    ids = [q.id for q in first.queries]
    assert len(ids) == 10 and ids == [q.id for q in again.queries] and ids != [q.id for q in other.queries]
    assert [int(q.input) for q in first.queries] == sorted(int(q.input) for q in first.queries)


# --- bad input: one line naming the file, record or key ------------------------------------------


def test_missing_column_names_the_file_line_and_key(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("sentence,label\nfine,1\n")
    with pytest.raises(ConfigError) as e:  # the first record: the config names a field the file lacks
        load_task({"name": "csv", "pool": str(path), "queries": str(path)})
    assert str(e.value) == f"{path}:2: no field 'text' (task.input_field); the record has: sentence, label"
    path.write_text("text,label\nfine,1\n")
    other = tmp_path / "o.jsonl"
    other.write_text('{"text": "a", "label": 1}\n{"txt": "b", "label": 1}\n')
    with pytest.raises(DataError) as e:  # a later record: the data lacks it
        load_task({"name": "jsonl", "pool": str(other), "queries": str(other)})
    assert str(e.value) == f"{other}:2: no field 'text' (task.input_field); the record has: txt, label (did you mean 'txt'?)"


def test_unknown_label_names_the_record_and_the_verbalizer(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 3}, {"text": "c", "label": 0}])
    with pytest.raises(DataError) as e:
        load_task(jsonl_cfg(path, path))
    assert str(e.value) == (f"labels without an entry in task.verbalizer: '3' (1) (first at {path}:2); the data's labels: "
                            "'1' (1), '3' (1), '0' (1); map exactly these (task.verbalizer={...} on the command line "
                            "replaces the preset's), or set task.unmapped_labels=warn")


def test_empty_pool_file_is_named(tmp_path, sentiment_jsonl):
    _, test = sentiment_jsonl
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError) as e:
        load_task(jsonl_cfg(empty, test))
    assert str(e.value) == f"task.pool: {empty} has no examples"


def test_missing_file_and_bad_json_and_bad_line(tmp_path, sentiment_jsonl):
    train, _ = sentiment_jsonl
    with pytest.raises(DataError, match=r"^task.queries: no such file .*nope.jsonl$"):
        load_task(jsonl_cfg(train, tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 0}\n{"text": \n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        load_task(jsonl_cfg(train, bad))
    lines = tmp_path / "sst.txt"
    lines.write_text("1 fine film\n0\n")
    with pytest.raises(DataError, match=r"sst.txt:2: expected '<label> <text>', got '0'"):
        load_task({"name": "label_text", "pool": str(lines), "queries": str(lines)})


def test_a_ragged_csv_row_names_the_file_row_and_both_counts(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nfine,1\ngood, not great,1\n")  # an unquoted comma: 3 fields
    with pytest.raises(DataError) as e:
        load_task({"name": "csv", "pool": str(path), "queries": str(path)})
    assert str(e.value) == f"{path}:3: row 2 has 3 fields, the header has 2 (text, label); quote fields that contain ','"
    path.write_text("text,label\nfine,1\n\n\"two\nlines\"\n")  # a blank line is skipped; a short row is not
    with pytest.raises(DataError) as e:
        load_task({"name": "csv", "pool": str(path), "queries": str(path)})
    assert str(e.value) == f"{path}:5: row 2 has 1 field, the header has 2 (text, label)"


def test_task_files_in_another_encoding_are_named_or_read_with_task_encoding(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\nfine,1\ncafé crème,0\n".encode("latin-1"))
    cfg = {"name": "csv", "pool": str(path), "queries": str(path)}
    with pytest.raises(DataError) as e:
        load_task(cfg)
    assert str(e.value) == (f"{path}:3: not valid utf-8 at byte 3 of the line (0xe9); if the file is in another encoding, "
                            "set task.encoding (e.g. task.encoding=latin-1)")
    assert [x.input for x in load_task({**cfg, "encoding": "latin-1"}).pool] == ["fine", "café crème"]
    lines = tmp_path / "sst.txt"
    lines.write_bytes("1 très bien\n0 mal\n".encode("cp1252"))
    assert load_task({"name": "label_text", "pool": str(lines), "queries": str(lines), "encoding": "cp1252"}).pool[0].input == "très bien"
    with pytest.raises(ConfigError, match=r"^task.encoding: unknown encoding 'utf-9'"):
        load_task({**cfg, "encoding": "utf-9"})
    path.write_bytes("\ufefftext,label\nfine,1\n".encode())  # a spreadsheet's byte-order mark
    assert load_task(cfg).pool[0].input == "fine"


def test_an_unset_task_file_says_it_must_be_set(sentiment_jsonl):
    _, test = sentiment_jsonl
    with pytest.raises(ConfigError) as e:
        load_task({"name": "csv", "pool": "???", "queries": str(test)})  # conf/task/csv.yaml's pool: ???
    assert str(e.value) == "task.pool is required by task 'csv': set it, e.g. task.pool=..."


def test_bad_task_config_keys_are_named(sentiment_jsonl):
    train, test = sentiment_jsonl
    with pytest.raises(ConfigError, match=r"task 'jsonl' has no parameter 'input_column' \(task.input_column\)"):
        load_task(jsonl_cfg(train, test, input_column="x"))
    with pytest.raises(ConfigError, match=r"task.template.order must be one of"):
        load_task(jsonl_cfg(train, test, template={"order": "best_last"}))
    with pytest.raises(ConfigError, match=r"output_format must contain \{output\} once"):
        load_task(jsonl_cfg(train, test, template={"output_format": "Answer:"}))


# --- GINC ----------------------------------------------------------------------------------------


def test_ginc_matched_pool_groups_by_concept_and_start_property():
    task = load_task({"name": "ginc", "n_queries": 40, "pool_per_group": 3}, data={"name": "ginc"})
    assert task.group_key == "group" and len(task.queries) == 40
    assert len(task.pool) == 5 * 9 * 3  # 5 concepts x 9 start properties x 3
    groups = {e.meta["group"] for e in task.pool}
    assert all(q.meta["group"] in groups for q in task.queries)
    assert all(q.meta["split"] == "id" and q.meta["concept"] < 5 for q in task.queries)
    assert len({e.id for e in task.pool + task.queries}) == len(task.pool) + 40
    # the label set: every word the HMMs can emit (the delimiter included), nothing else
    from iclx.ginc import ginc_language

    language = ginc_language({"name": "ginc"})
    assert task.labels == [language.symbols[i] for i in sorted(set(language.emission.flat))]
    assert task.labels[0] == "/" and 30 < len(task.labels) < 51
    assert {q.label for q in task.queries} <= set(task.labels)
    assert all(len(q.input.split()) == 4 for q in task.queries)  # example_length 5: 4 words of x


def test_ginc_ood_mixed_pool_uses_held_out_concepts_and_needs_ginc_data():
    task = load_task({"name": "ginc", "split": "ood", "pool": "mixed", "pool_size": 100, "n_queries": 10,
                      "example_length": 8}, data={"name": "ginc"})
    assert task.group_key is None and len(task.pool) == 100
    assert {e.meta["concept"] for e in task.pool} == {5, 6, 7, 8, 9}
    assert all(len(q.input.split()) == 7 for q in task.queries)
    with pytest.raises(ConfigError, match="GINC prompts need data=ginc"):
        load_task({"name": "ginc"}, data={"name": "bundled"})


# --- template -----------------------------------------------------------------------------------


class SpaceTokenizer:
    """One id per whitespace-separated word (ids assigned on first sight)."""

    eos_id = 0

    def __init__(self):
        self.vocab = {"<eos>": 0}

    def encode(self, text):
        return [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]

    def decode(self, ids):
        inverse = {i: w for w, i in self.vocab.items()}
        return " ".join(inverse[i] for i in ids)


def examples(n):
    return [Example(id=f"e{i}", input=f"x{i}", output=f"y{i}") for i in range(n)]


def words(tokenizer, ids):
    return tokenizer.decode(ids).split()


def test_template_renders_demonstrations_query_and_continuation():
    t = build_template({"input_format": "Review: {input}\n", "output_format": "Sentiment: {output}", "separator": "\n\n"})
    e = Example(id="a", input="fine", output="positive")
    assert t.demonstration(e) == "Review: fine\nSentiment: positive\n\n"
    assert t.query(e) == "Review: fine\nSentiment:"
    assert t.continuation("negative") == " negative"  # the space moves to the label, as BPE learned it


@pytest.mark.parametrize(
    ("order", "expected"),
    [("most_similar_last", "x2 y2 x1 y1 x0 y0 q"), ("most_similar_first", "x0 y0 x1 y1 x2 y2 q")],
)
def test_demonstration_order(order, expected):
    tok = SpaceTokenizer()
    builder = PromptBuilder(Template(separator=" ", order=order), tok, max_tokens=100)
    prompt = builder.build(Example(id="q", input="q", output="?"), examples(3), ranked=[0, 1, 2])
    assert " ".join(words(tok, prompt.ids)) == expected
    assert prompt.dropped == 0


def test_random_order_is_a_seeded_permutation_per_query():
    tok = SpaceTokenizer()
    layouts = []
    for seed in (0, 0, 1):
        builder = PromptBuilder(Template(order="random"), tok, max_tokens=100, seed=seed)
        layouts.append(builder.build(Example(id="q", input="q", output="?"), examples(8), ranked=list(range(8))).demonstrations)
    assert sorted(layouts[0]) == list(range(8))
    assert layouts[0] == layouts[1] and layouts[0] != layouts[2]


def test_truncation_drops_the_least_relevant_demonstrations_first():
    tok = SpaceTokenizer()
    # each demonstration is 2 tokens, the query 1, the EOS prefix 1; reserve 1 for the label
    builder = PromptBuilder(Template(separator=" "), tok, max_tokens=9, prefix_ids=[0])
    prompt = builder.build(Example(id="q", input="q", output="?"), examples(5), ranked=[3, 1, 4, 0, 2], reserve=1)
    assert prompt.dropped == 2 and prompt.demonstrations == [4, 1, 3]  # kept the 3 best; best last
    assert prompt.ids[0] == 0 and words(tok, prompt.ids[1:]) == ["x4", "y4", "x1", "y1", "x3", "y3", "q"]
    assert len(prompt.ids) + 1 == 9


def test_a_demonstration_too_long_to_fit_is_left_out_and_shorter_ones_still_tried():
    tok = SpaceTokenizer()
    pool = examples(3)
    pool[1] = Example(id="long", input="a b c d e f g h", output="y")  # 9 tokens: never fits
    builder = PromptBuilder(Template(separator=" "), tok, max_tokens=9, prefix_ids=[0])
    prompt = builder.build(Example(id="q", input="q", output="?"), pool, ranked=[1, 0, 2], reserve=1)
    assert prompt.dropped == 1 and prompt.demonstrations == [2, 0]  # the best one is too long: the next two fit


def test_a_query_longer_than_the_context_keeps_its_end():
    tok = SpaceTokenizer()
    builder = PromptBuilder(Template(), tok, max_tokens=4)
    prompt = builder.build(Example(id="q", input="a b c d e f", output="?"), examples(2), ranked=[0, 1], reserve=1)
    assert prompt.query_truncated and prompt.dropped == 2 and words(tok, prompt.ids) == ["d", "e", "f"]


def test_an_eos_separator_makes_each_demonstration_its_own_document():
    """experiment=clustered_icl's eos_separated prompts: the separator text '<eos>' is the EOS token."""
    from iclx.registry import build

    tok = build("tokenizer", {"name": "word"})
    tok.train(["a b / c d", "e f"])
    builder = PromptBuilder(Template(separator=" <eos> "), tok, max_tokens=100, prefix_ids=[tok.eos_id])
    pool = [Example(id="0", input="a", output="b"), Example(id="1", input="c", output="d")]
    prompt = builder.build(Example(id="q", input="e", output="f"), pool, ranked=[0, 1])
    eos, (a, b, c, d, e) = tok.eos_id, (tok.encode(w)[0] for w in "abcde")
    assert prompt.ids == [eos, c, d, eos, a, b, eos, e]
