"""Corpus sources (text_files, bundled, hf), the validation split, and their bad-input errors."""

from __future__ import annotations

import gzip
import json
import logging
import shutil

import pytest
from omegaconf import OmegaConf

from iclx.data.corpus import build_source, load_corpus, split_documents
from iclx.data.document import Document
from iclx.errors import ConfigError, DataError
from iclx.lineage import Lineage

WIKI = " = First = \n\n First article text .\n\n = = Section = = \n\n more .\n = Second = \n\n Second text .\n"


def docs_of(cfg: dict) -> list[Document]:
    return list(build_source(cfg).documents())


def test_text_files_split_modes(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n\nthree\n")
    (tmp_path / "w.md").write_text(WIKI)
    assert [d.text for d in docs_of({"name": "text_files", "paths": str(tmp_path / "a.txt")})] == ["one\ntwo\n\nthree"]
    assert [d.text for d in docs_of({"name": "text_files", "paths": str(tmp_path / "a.txt"), "split": "line"})] == ["one", "two", "three"]
    assert [d.text for d in docs_of({"name": "text_files", "paths": str(tmp_path / "a.txt"), "split": "blank_line"})] == ["one\ntwo", "three"]
    articles = docs_of({"name": "text_files", "paths": str(tmp_path / "w.md"), "split": "regex", "boundary": r"^ = [^=].* = $"})
    assert [d.text.splitlines()[0] for d in articles] == [" = First = ", " = Second = "]
    assert "= = Section = =" in articles[0].text  # sections stay inside their article
    assert articles[0].meta["source"] == "w.md"


def test_text_files_globs_and_jsonl(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "1.jsonl").write_text(json.dumps({"body": "first", "lang": "en"}) + "\n\n" + json.dumps({"body": "second"}) + "\n")
    with gzip.open(tmp_path / "x" / "2.jsonl.gz", "wt") as f:
        f.write(json.dumps({"body": "zipped"}) + "\n")
    docs = docs_of({"name": "text_files", "paths": [str(tmp_path / "**" / "*.jsonl*")], "text_field": "body"})
    assert [d.text for d in docs] == ["first", "second", "zipped"]
    assert docs[0].meta == {"lang": "en", "source": "1.jsonl"}


def test_text_files_bad_inputs_name_file_and_key(tmp_path):
    with pytest.raises(DataError, match=r"data.paths: '.*nothing\*.txt' matches no file"):
        docs_of({"name": "text_files", "paths": str(tmp_path / "nothing*.txt")})
    (tmp_path / "r.jsonl").write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(DataError, match=r"r.jsonl:2: not a JSON object"):
        docs_of({"name": "text_files", "paths": str(tmp_path / "r.jsonl")})
    (tmp_path / "f.jsonl").write_text('{"content": "x"}\n')
    with pytest.raises(DataError, match=r"f.jsonl:1: no string field 'text' \(set data.text_field\)"):
        docs_of({"name": "text_files", "paths": str(tmp_path / "f.jsonl")})
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"data.csv is not a .txt/.md/.jsonl/.jsonl.gz file"):
        docs_of({"name": "text_files", "paths": str(tmp_path / "data.csv")})
    with pytest.raises(ConfigError, match=r"data.boundary is required with data.split=regex"):
        build_source({"name": "text_files", "paths": "x", "split": "regex"})
    with pytest.raises(ConfigError, match=r"data.paths is required by data 'text_files'"):
        build_source({"name": "text_files", "paths": "???"})


def test_non_utf8_files_are_replaced_skipped_or_refused(tmp_path, caplog):
    (tmp_path / "good.txt").write_text("fine text")
    (tmp_path / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    cfg = {"name": "text_files", "paths": str(tmp_path / "*.txt")}
    with caplog.at_level(logging.WARNING, logger="iclx"):
        replaced = docs_of(cfg)
    assert [d.text for d in replaced] == ["fine text", "caf\ufffd cr\ufffdme"]
    assert "1 file(s)/record(s) not valid utf-8 (undecodable bytes replaced by U+FFFD)" in caplog.text
    assert "latin1.txt" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="iclx"):
        assert [d.text for d in docs_of({**cfg, "encoding_errors": "skip"})] == ["fine text"]
    assert "(skipped)" in caplog.text
    with pytest.raises(DataError) as e:
        docs_of({**cfg, "encoding_errors": "strict"})
    assert str(e.value) == (f"{tmp_path / 'latin1.txt'}:1: not valid utf-8 at byte 3 of the line (0xe9); if the file is in "
                            "another encoding, set data.encoding (e.g. data.encoding=latin-1), else data.encoding_errors=replace or skip")
    assert [d.text for d in docs_of({**cfg, "encoding": "latin-1", "encoding_errors": "strict"})] == ["fine text", "café crème"]
    (tmp_path / "r.jsonl").write_bytes(b'{"text": "ok"}\n' + '{"text": "crème"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"r.jsonl:2: not valid utf-8 at byte 12 of the line \(0xe8\)"):
        docs_of({"name": "text_files", "paths": str(tmp_path / "r.jsonl"), "encoding_errors": "strict"})
    with pytest.raises(ConfigError, match=r"^data.encoding: unknown encoding 'utf-9'"):
        build_source({**cfg, "encoding": "utf-9"})


def test_a_binary_file_in_a_text_corpus_is_skipped_with_its_name_or_refused(tmp_path, caplog):
    (tmp_path / "good.txt").write_text("plain words\n")
    shutil.copy("/bin/ls", tmp_path / "ls.txt")  # NUL bytes
    (tmp_path / "noise.txt").write_bytes(bytes(range(1, 256)) * 8)  # no NUL, but mostly undecodable
    (tmp_path / "latin1.txt").write_bytes("a few accents: café crème brûlée".encode("latin-1"))  # text, wrong encoding
    cfg = {"name": "text_files", "paths": str(tmp_path / "*.txt")}
    with caplog.at_level(logging.WARNING, logger="iclx"):
        docs = docs_of(cfg)
    assert [d.meta["source"] for d in docs] == ["good.txt", "latin1.txt"]  # latin1.txt: bytes replaced, as above
    assert (f"data: 2 file(s) are not text (NUL bytes, or over 20% not valid utf-8: set data.encoding if that is text), "
            f"skipped (data.non_text=error stops instead): {tmp_path / 'ls.txt'}, {tmp_path / 'noise.txt'}") in caplog.text
    with pytest.raises(DataError) as e:
        docs_of({**cfg, "non_text": "error"})
    assert str(e.value) == f"{tmp_path / 'ls.txt'}: not a text file (it holds NUL bytes); remove it from data.paths, or set data.non_text=skip"
    with pytest.raises(DataError, match=r"noise.txt: not a text file \(\d+% of its bytes are not valid utf-8; if it is text, set data.encoding\)"):
        docs_of({"name": "text_files", "paths": str(tmp_path / "noise.txt"), "non_text": "error"})
    (tmp_path / "greek").mkdir()  # a legacy encoding of a non-Latin script is mostly undecodable as UTF-8, like noise
    (tmp_path / "greek" / "g.txt").write_bytes("Καλημέρα κόσμε\n".encode("iso8859-7"))
    greek = {"name": "text_files", "paths": str(tmp_path / "greek" / "*.txt"), "non_text": "error"}
    with pytest.raises(DataError, match=r"g.txt: not a text file \(\d+% .*; if it is text, set data.encoding\)"):
        docs_of(greek)
    assert [d.text for d in docs_of({**greek, "encoding": "iso8859-7"})] == ["Καλημέρα κόσμε"]
    with pytest.raises(ConfigError, match=r"^data.non_text must be one of 'skip', 'error', got str 'warn'$"):
        build_source({**cfg, "non_text": "warn"})


def test_split_is_seeded_disjoint_and_by_document():
    docs = [Document(text=f"d{i}", id=str(i)) for i in range(100)]
    train, val = split_documents(docs, 0.1, seed=3)
    assert len(val) == 10 and len(train) == 90
    assert {d.id for d in train}.isdisjoint({d.id for d in val})
    assert [d.id for d in split_documents(docs, 0.1, seed=3)[1]] == [d.id for d in val]
    assert [d.id for d in split_documents(docs, 0.1, seed=4)[1]] != [d.id for d in val]
    assert [d.id for d in train] == sorted((d.id for d in train), key=int)  # corpus order kept
    assert split_documents(docs, 0.0, seed=0) == (docs, [])
    assert len(split_documents(docs[:3], 0.01, seed=0)[1]) == 1  # at least one held out
    with pytest.raises(DataError, match="the corpus has 1 document; a validation split needs at least 2"):
        split_documents(docs[:1], 0.1, seed=0)


def test_empty_corpus_and_bad_validation_fraction(tmp_path):
    (tmp_path / "blank.txt").write_text("  \n\n \t\n")
    with pytest.raises(DataError, match=r"data: the corpus is empty: .*blank.txt gave no document with text"):
        load_corpus({"name": "text_files", "paths": str(tmp_path / "blank.txt")})
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"data.validation.fraction must be in \[0, 1\), got 1.5"):
        load_corpus({"name": "text_files", "paths": str(tmp_path / "x.txt"), "validation": {"fraction": 1.5}})


def corpus_key(data_cfg):
    return Lineage(OmegaConf.create({"data": data_cfg})).key("corpus")


def test_corpus_key_follows_file_content_not_the_ordering(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("version one")
    cfg = {"name": "text_files", "paths": str(path), "order": {"name": "none"}}
    key = corpus_key(cfg)
    assert corpus_key({**cfg, "order": {"name": "random"}}) == key
    path.write_text("version two, longer")
    assert corpus_key(cfg) != key


def test_bundled_corpus_is_real_text_with_provenance():
    c = load_corpus({"name": "bundled", "validation": {"fraction": 0.05, "seed": 0}})
    docs = c.train + c.val
    sources = [d.meta["source"] for d in docs]
    assert sources.count("wikitext2") == 25 and sources.count("shakespeare") == 2096
    assert len(c.val) == round(0.05 * len(docs))
    assert any(d.text.startswith(" = Homarus gammarus = ") for d in docs)
    from iclx.data.bundled import RESOURCES

    assert "CC BY-SA 3.0" in (RESOURCES.parent / "README.md").read_text()


def test_hf_source_reads_a_local_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["alpha doc", "beta doc", "gamma doc"], "label": [0, 1, 0]}).save_to_disk(str(tmp_path / "saved"))
    docs = docs_of({"name": "hf", "path": str(tmp_path / "saved"), "max_documents": 2})
    assert [d.text for d in docs] == ["alpha doc", "beta doc"] and docs[1].meta == {"label": 1}
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "part.jsonl").write_text('{"body": "from json"}\n{"body": "second"}\n')
    docs = docs_of({"name": "hf", "path": str(tmp_path / "files"), "text_field": "body"})
    assert [d.text for d in docs] == ["from json", "second"]
    with pytest.raises(DataError, match=r"hf .*saved \[train\] record 0: no string field 'content' \(fields: text, label\)"):
        docs_of({"name": "hf", "path": str(tmp_path / "saved"), "text_field": "content"})


def test_wikitext_preset_on_shared_data(shared_data):
    docs = docs_of({"name": "text_files", "paths": str(shared_data / "wikitext-2" / "valid.txt"),
                    "split": "regex", "boundary": r"^ = [^=].* = $"})
    assert len(docs) == 60  # the README: 60 articles
    assert all(d.text.startswith(" = ") for d in docs)
