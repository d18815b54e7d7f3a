"""How a dataset's records become ICL examples: the input, the label, the choices, by config.

A record is one row of a file or dataset, a mapping of field names to values. Its parts are
chosen in the conventions of lm-evaluation-harness task YAMLs:

- the input: ``input_field`` (a field's text), or ``doc_to_text``, a Jinja2 template over any
  fields (``"{{Title}}. {{Description}}"``);
- the label: ``label_field``, or ``doc_to_target`` (a template; ``"{{answer}}"`` keeps the field's
  type, so an int stays an int); ``label_pattern`` takes it from the label's text with a regular
  expression (its first group, or the group named ``label``): ``^(\\w+):`` takes ``DESC`` of
  ``DESC:manner``. On ``<label> <text>`` lines (``task=sst2``'s format, ``label_text``) the pattern
  runs over the whole line and the text after the match is the input;
- the output text: the label through ``verbalizer`` (``{0: negative, 1: positive}``), or the label
  itself; ``doc_to_choice`` makes a multiple-choice task instead: a list (``[A, B, C, D]``, one
  label set for every query) or a template that gives each record its own choices
  (``"{{choices}}"``, ``Example.choices``); the label is then a choice's text or its index.

Templates are sandboxed (a config cannot reach Python through them) and strict: a field a record
lacks is an error naming the field, the record and the fields it has, never an empty string.

Every label must have a verbalizer entry and every entry must occur in the data
(``unmapped_labels: error``, the default); ``unmapped_labels: warn`` drops the records whose label
has no entry, keeps entries the data lacks, and warns with the counts.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from iclx.errors import ConfigError, DataError, did_you_mean
from iclx.tasks.example import Example

log = logging.getLogger("iclx")

UnmappedLabels = Literal["error", "warn"]


@dataclass
class Record:
    """One record as read: where it came from (``source``, a file or dataset as the config names
    it; ``number``, its line or row) and its fields."""

    source: str
    number: int
    fields: dict[str, Any]
    where: str  # how messages name it: "train.csv:3", "my_dataset[train] row 17"

    @property
    def id(self) -> str:
        """Unique per source: ``pool/data.txt:3`` and ``queries/data.txt:3`` differ, while a file
        read as both pool and queries gives each line one id (never its own demonstration)."""
        return f"{self.source}:{self.number}"


# --- templates -----------------------------------------------------------------------------------


@cache
def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


_SINGLE_EXPRESSION = re.compile(r"\s*\{\{((?:(?!\}\}|\{\{|\{%|\{#).)*)\}\}\s*", re.S)


class FieldTemplate:
    """A Jinja2 template over a record's fields, from the config key ``key``.

    ``text(record)`` renders it; ``value(record)`` is the value of a template that is one
    expression (``"{{answer}}"``: the field's int, ``"{{choices}}"``: its list), else the text."""

    def __init__(self, source: str, *, key: str):
        from jinja2 import TemplateSyntaxError, meta

        self.source, self.key = source, key
        env = _environment()
        try:
            tree = env.parse(source)
            single = _SINGLE_EXPRESSION.fullmatch(source)
            self._expression = env.compile_expression(single.group(1), undefined_to_none=False) if single else None
            self._template = env.from_string(source)
        except TemplateSyntaxError as e:
            raise ConfigError(f"{key}: template syntax error at line {e.lineno}: {e.message} (in {source!r})") from None
        self.fields = sorted(name for name in meta.find_undeclared_variables(tree) if name not in env.globals)

    def check_fields(self, record: Record, *, first: bool) -> None:
        """A field the template names and the record lacks: on the first record a config error (the
        template names a field the data does not have), later a data error naming the record."""
        missing = [name for name in self.fields if name not in record.fields]
        if missing:
            error = ConfigError if first else DataError
            raise error(missing_field_message(record, missing[0], f"{self.key}: {self.source!r}"))

    def text(self, record: Record) -> str:
        self.check_fields(record, first=False)
        try:
            return self._template.render(record.fields)
        except Exception as e:  # noqa: BLE001 -- Jinja's errors (an undefined attribute, a type error) name no record
            raise DataError(f"{record.where}: {self.key}: {type(e).__name__}: {e}") from None

    def value(self, record: Record) -> Any:
        if self._expression is None:
            return self.text(record)
        from jinja2 import Undefined

        self.check_fields(record, first=False)
        try:
            value = self._expression(**record.fields)
        except Exception as e:  # noqa: BLE001 -- as above
            raise DataError(f"{record.where}: {self.key}: {type(e).__name__}: {e}") from None
        if isinstance(value, Undefined):
            raise DataError(f"{record.where}: {self.key}: {value._undefined_message} (in {self.source!r})")
        return value


def missing_field_message(record: Record, name: str, what: str) -> str:
    have = [str(k) for k in record.fields if k is not None]
    return f"{record.where}: no field '{name}' ({what}); the record has: {', '.join(have)}{did_you_mean(name, have)}"


def compile_pattern(pattern: str, *, key: str = "task.label_pattern") -> re.Pattern[str]:
    """``pattern`` compiled; it must hold a group (the label)."""
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"{key}: '{pattern}' is not a valid regular expression ({e})") from None
    if compiled.groups == 0:
        raise ConfigError(f"{key}: '{pattern}' has no group: put the label in parentheses, e.g. '^(\\w+):'")
    return compiled


def pattern_label(match: re.Match[str]) -> str:
    return match.group("label") if "label" in match.re.groupindex else match.group(1)


# --- records -> examples -------------------------------------------------------------------------


@dataclass
class Draft:
    """A record's example before its label becomes output text (that needs every split's labels)."""

    record: Record
    input: str
    target: Any  # the label as the record gives it (a class, a choice's text or index, an answer)
    choices: list[str] | None = None  # its own choices (doc_to_choice as a template)


@dataclass
class RecordFormat:
    """The task keys that say which parts of a record are the input and the label."""

    input_field: str = "text"
    label_field: str = "label"
    doc_to_text: str | None = None
    doc_to_target: str | None = None
    doc_to_choice: str | list[str] | None = None
    label_pattern: str | None = None  # over the label's text (label_text: over the line, see files.py)
    verbalizer: Mapping[Any, str] | None = None
    unmapped_labels: UnmappedLabels = "error"
    open_ended: bool = False
    key: str = "task"
    _text: FieldTemplate | None = field(init=False, default=None)
    _target: FieldTemplate | None = field(init=False, default=None)
    _choices: FieldTemplate | None = field(init=False, default=None)
    _pattern: re.Pattern[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        key = self.key
        if self.verbalizer is not None:
            self.verbalizer = {str(k): str(v) for k, v in self.verbalizer.items()}
        if self.doc_to_text is not None:
            self._text = FieldTemplate(self.doc_to_text, key=f"{key}.doc_to_text")
        if self.doc_to_target is not None:
            self._target = FieldTemplate(self.doc_to_target, key=f"{key}.doc_to_target")
        if self.label_pattern is not None:
            self._pattern = compile_pattern(self.label_pattern, key=f"{key}.label_pattern")
        if self.doc_to_choice is not None:
            if self.verbalizer is not None:
                raise ConfigError(f"{key}.doc_to_choice and {key}.verbalizer both name the outputs: set one of them")
            if self.open_ended:
                raise ConfigError(f"{key}.doc_to_choice makes a multiple-choice task, {key}.open_ended=true an open one: set one")
            if isinstance(self.doc_to_choice, str):
                self._choices = FieldTemplate(self.doc_to_choice, key=f"{key}.doc_to_choice")
            elif not self.doc_to_choice or len(set(self.doc_to_choice)) != len(self.doc_to_choice):
                raise ConfigError(f"{key}.doc_to_choice must list distinct choices, got {self.doc_to_choice!r}")

    @property
    def static_choices(self) -> list[str] | None:
        return [str(c) for c in self.doc_to_choice] if isinstance(self.doc_to_choice, list) else None

    def draft(self, record: Record, *, first: bool) -> Draft:
        """The record's input, label and choices; ``first``: the first record of its file, where a
        field the config names and the record lacks is a config error."""
        templates = [t for t in (self._text, self._target, self._choices) if t is not None]
        for template in templates:
            template.check_fields(record, first=first)
        for name, key in ((self.input_field, "input_field"), (self.label_field, "label_field")):
            used = (self._text is None) if key == "input_field" else (self._target is None)
            if used and (name not in record.fields or record.fields[name] is None):
                error = ConfigError if first else DataError
                raise error(missing_field_message(record, name, f"{self.key}.{key}"))
        text = self._text.text(record) if self._text is not None else record.fields[self.input_field]
        target = self._target.value(record) if self._target is not None else record.fields[self.label_field]
        if self._pattern is not None:
            match = self._pattern.search(str(target))
            if match is None:
                raise DataError(
                    f"{record.where}: {self.key}.label_pattern '{self.label_pattern}' does not match the label {str(target)[:60]!r}"
                )
            target = pattern_label(match)
        choices = None
        if self._choices is not None:
            choices = self._choices.value(record)
            if isinstance(choices, str) or not isinstance(choices, Sequence) or not choices:
                named = isinstance(choices, str) and choices in record.fields
                hint = f" (for the field {choices}, write '{{{{{choices}}}}}')" if named else ""
                raise DataError(f"{record.where}: {self.key}.doc_to_choice must give a non-empty list of choices, got {choices!r}{hint}")
            choices = [str(c) for c in choices]
        return Draft(record, str(text).strip(), target, choices)

    def drafts(self, records: Iterable[Record]) -> list[Draft]:
        return [self.draft(record, first=i == 0) for i, record in enumerate(records)]

    # --- labels, over every split at once --------------------------------------------------------

    def examples(self, splits: Mapping[str, list[Draft]]) -> tuple[dict[str, list[Example]], list[str] | None]:
        """Each split's examples and the task's label set (None: open-ended, or per-query choices).

        A label that no verbalizer entry (or static choice) names, and a verbalizer entry that no
        record has, are an error naming them with their counts, or with ``unmapped_labels: warn``
        a warning (the unmapped records are dropped)."""
        if self.open_ended:
            return {s: [self._example(d, str(d.target)) for d in ds] for s, ds in splits.items()}, None
        if self._choices is not None:
            return {s: [self._example(d, choice_of(d.target, d.choices, d.record, key=f"{self.key}.doc_to_choice"), d.choices)
                        for d in ds] for s, ds in splits.items()}, None
        static, verbalizer = self.static_choices, self.verbalizer
        if static is not None:  # one label set, named by choice or index

            def resolve(target: Any) -> str | None:
                return resolve_choice(target, static)

            labels, key = static, f"{self.key}.doc_to_choice"
        elif verbalizer is not None:

            def resolve(target: Any) -> str | None:
                return verbalizer.get(str(target))

            labels, key = list(dict.fromkeys(verbalizer.values())), f"{self.key}.verbalizer"
        else:
            resolve, labels, key = str, None, None
        seen: Counter[str] = Counter()  # every label in the data, in order of appearance
        unmapped: Counter[str] = Counter()
        first_unmapped: dict[str, str] = {}
        counted: set[str] = set()  # ids: a file read as pool and queries counts once
        out: dict[str, list[Example]] = {}
        for split, drafts in splits.items():
            out[split] = []
            for d in drafts:
                text = resolve(d.target)
                if d.record.id not in counted:
                    counted.add(d.record.id)
                    seen[str(d.target)] += 1
                    unmapped[str(d.target)] += text is None
                if text is None:
                    first_unmapped.setdefault(str(d.target), d.record.where)
                    continue
                out[split].append(self._example(d, text))
        if key is not None:
            self._report_unmapped(key, +unmapped, first_unmapped, seen, verbalizer if static is None else None)
        if labels is None:
            labels = list(dict.fromkeys(e.output for examples in out.values() for e in examples))
        return out, labels

    def _example(self, draft: Draft, output: str, choices: list[str] | None = None) -> Example:
        record = draft.record
        return Example(
            id=record.id, input=draft.input, output=output, label=None if self.open_ended else output,
            meta={"source": record.source, "line": record.number}, choices=choices,
        )

    def _report_unmapped(self, key: str, unmapped: Counter[str], first: Mapping[str, str], seen: Counter[str],
                         verbalizer: Mapping[str, str] | None) -> None:
        """``unmapped``: labels ``key`` does not map, with their record counts; ``verbalizer``: its
        entries must all occur in ``seen`` (a static choice list need not: a small file may lack one)."""
        unseen = [k for k in verbalizer if k not in seen] if verbalizer is not None else []
        if not unmapped and not unseen:
            return
        parts = []
        if unmapped:
            what = "without an entry" if verbalizer is not None else "not one of its choices (nor an index)"
            parts.append(f"labels {what} in {key}: {counts(unmapped)} (first at {first[unmapped.most_common(1)[0][0]]})")
        if unseen:
            parts.append(f"entries of {key} that no record has: {', '.join(f'{k} ({verbalizer[k]})' for k in unseen)}")
        message = "; ".join(parts) + f"; the data's labels: {counts(seen, limit=20)}"
        if self.unmapped_labels == "warn":
            dropped = sum(unmapped.values())
            message += f" ({dropped} record{'s' * (dropped != 1)} dropped: {self.key}.unmapped_labels=warn)" if dropped else ""
            log.warning("task: %s", message)
            warnings.warn(message, stacklevel=3)
            return
        fix = f"map exactly these ({key}={{...}} on the command line replaces the preset's)" if verbalizer is not None else "fix the labels"
        raise DataError(f"{message}; {fix}, or set {self.key}.unmapped_labels=warn")


def counts(counter: Counter[str], limit: int = 10) -> str:
    """``DESC (138), ENTY (94)``: the most common first, at most ``limit`` (then ``... N more``)."""
    items = counter.most_common()
    shown = ", ".join(f"{label!r} ({n})" for label, n in items[:limit])
    return shown + (f", ... {len(items) - limit} more" if len(items) > limit else "")


def resolve_choice(target: Any, choices: Sequence[str]) -> str | None:
    """The choice a target names: an int is an index; a text is a choice's text, else (all digits)
    an index. None when it names none."""
    if isinstance(target, bool):
        return None
    if isinstance(target, int):
        return choices[target] if 0 <= target < len(choices) else None
    text = str(target).strip()
    if text in choices:
        return text
    if text.isdigit() and int(text) < len(choices):
        return choices[int(text)]
    return None


def choice_of(target: Any, choices: Sequence[str], record: Record, *, key: str) -> str:
    choice = resolve_choice(target, choices)
    if choice is None:
        raise DataError(f"{record.where}: the label {target!r} is neither one of the record's {len(choices)} choices ({key}) "
                        f"nor an index into them: {list(choices)!r}")
    return choice
