"""``hf``: a Hugging Face dataset as the corpus (optional extra ``iclx[hf]``).

``path`` is a hub name (``wikitext``, with ``subset: wikitext-103-raw-v1``, the dataset's config name), a local folder written
by ``Dataset.save_to_disk``, or a local folder/file of json/csv/parquet/text files; hub datasets
stream by default (nothing is downloaded beyond what is read). One record is one document, its
text in ``text_field``; ``max_documents`` stops early.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iclx.data.corpus import CorpusSource
from iclx.data.document import Document
from iclx.errors import ConfigError, DataError
from iclx.registry import register

# local file suffix -> the `datasets` builder that reads it
LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


@register("data", "hf")
class HFDataset(CorpusSource):
    def __init__(
        self,
        path: str,
        subset: str | None = None,
        split: str = "train",
        text_field: str = "text",
        streaming: bool = True,
        max_documents: int | None = None,
    ):
        self.path, self.subset, self.split = path, subset, split
        self.text_field, self.streaming, self.max_documents = text_field, streaming, max_documents

    def describe(self) -> str:
        return f"hf {self.path}" + (f"/{self.subset}" if self.subset else "") + f" [{self.split}]"

    def fingerprint(self) -> Any:
        local = Path(self.path).expanduser()
        if not local.exists():
            return None  # a hub dataset: its name and config identify it
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]

    def _load(self) -> Any:
        try:
            import datasets
        except ImportError as e:
            raise ConfigError("data 'hf' needs the optional extra: pip install 'iclx[hf]'") from e
        local = Path(self.path).expanduser()
        try:
            if (local / "dataset_info.json").is_file() or (local / "dataset_dict.json").is_file():
                loaded = datasets.load_from_disk(str(local))
                return loaded[self.split] if isinstance(loaded, datasets.DatasetDict) else loaded
            if local.exists():
                files = [local] if local.is_file() else sorted(p for p in local.iterdir() if p.suffix in LOCAL_BUILDERS)
                if not files:
                    raise DataError(f"data.path: {local} holds no {'/'.join(LOCAL_BUILDERS)} file")
                builder = LOCAL_BUILDERS.get(files[0].suffix)
                if builder is None:
                    raise DataError(f"data.path: {local} is not a {'/'.join(LOCAL_BUILDERS)} file")
                return datasets.load_dataset(
                    builder, data_files=[str(f) for f in files], split=self.split, streaming=self.streaming
                )
            return datasets.load_dataset(self.path, self.subset, split=self.split, streaming=self.streaming)
        except (DataError, ConfigError):
            raise
        except Exception as e:  # datasets' errors are long; keep the first line and name the key
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(f"data.path: cannot load Hugging Face dataset '{self.path}' [{self.split}]: {first}") from e

    def documents(self) -> Iterator[Document]:
        for i, record in enumerate(self._load()):
            if self.max_documents is not None and i >= self.max_documents:
                break
            text = record.get(self.text_field)
            if not isinstance(text, str):
                fields = ", ".join(record) or "(none)"
                raise DataError(f"{self.describe()} record {i}: no string field '{self.text_field}' (fields: {fields})")
            meta = {k: v for k, v in record.items() if k != self.text_field and isinstance(v, (str, int, float, bool))}
            yield Document(text=text, id=f"{self.path}:{i}", meta=meta)
