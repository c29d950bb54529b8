"""Text every database stores alike: what one of them would refuse is replaced first.

PostgreSQL refuses the NUL character in text and JSON (SQLite keeps it), and no database
stores a lone surrogate, which is not UTF-8. A log line or parameter holding one must not
cost its batch, nor read back differently on another database, so before a batch is
written each such character becomes U+FFFD, the Unicode replacement character, on every
database. The check is cheap for the common case: a membership test per string, and an
encoding test only for text that is not ASCII.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from anabranch.schemas import RecordBatch

REPLACEMENT = "\ufffd"

_RUN_TEXT = ("name", "flow_name", "flow_version", "task_key", "cache_key")
_STATE_TEXT = ("name", "message")
_LOG_TEXT = ("name", "message")


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD (itself when it has none)."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = "".join(REPLACEMENT if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def storable_batch(batch: RecordBatch) -> RecordBatch:
    """The batch, or a copy of it whose text every database can store. Records that need
    no change are shared, not copied (the engine's own objects are never changed)."""
    if not _has_unstorable(batch):
        return batch
    return RecordBatch.model_construct(
        flow_runs=[_run(run) for run in batch.flow_runs],
        task_runs=[_run(run) for run in batch.task_runs],
        states=[_state_record(record) for record in batch.states],
        logs=[_model(log, _LOG_TEXT) for log in batch.logs],
    )


def _has_unstorable(batch: RecordBatch) -> bool:
    """Whether any text of the batch needs replacing: one look at all of it joined, which
    nearly always says no, before anything is copied. Parameters and tags are looked at
    when they are turned into JSON (``storable_json``)."""
    texts = [log.message for log in batch.logs]
    texts += [log.name for log in batch.logs]
    states = [record.state for record in batch.states]
    states += [run.state for run in (*batch.flow_runs, *batch.task_runs) if run.state]
    texts += [state.name for state in states]
    texts += [state.message for state in states if state.message]
    texts += [run.name for run in batch.flow_runs]
    texts += [run.flow_name for run in batch.flow_runs]
    texts += [run.flow_version for run in batch.flow_runs if run.flow_version]
    texts += [run.name for run in batch.task_runs]
    texts += [run.task_key for run in batch.task_runs]
    texts += [run.cache_key for run in batch.task_runs if run.cache_key]
    joined = "".join(texts)
    return storable(joined) is not joined


def _run(run: Any) -> Any:
    update = _changed_text(run, _RUN_TEXT)
    parameters = _storable_value(run.parameters)
    if parameters is not run.parameters:
        update["parameters"] = parameters
    tags = _storable_value(run.tags)
    if tags is not run.tags:
        update["tags"] = tags
    if run.state is not None:
        state = _model(run.state, _STATE_TEXT)
        if state is not run.state:
            update["state"] = state
    return run.model_copy(update=update) if update else run


def _state_record(record: Any) -> Any:
    state = _model(record.state, _STATE_TEXT)
    return record if state is record.state else record.model_copy(update={"state": state})


def _model(obj: Any, fields: tuple[str, ...]) -> Any:
    update = _changed_text(obj, fields)
    return obj.model_copy(update=update) if update else obj


def _changed_text(obj: Any, fields: tuple[str, ...]) -> dict[str, str]:
    update = {}
    for field in fields:
        value = getattr(obj, field, None)
        if isinstance(value, str):
            clean = storable(value)
            if clean is not value:
                update[field] = clean
    return update


def storable_json(value: Any, dumps: Callable[[Any], str]) -> str:
    """``dumps(value)`` for a JSON column, with text every database can store: an escaped
    NUL in the JSON (which PostgreSQL's jsonb refuses) or a lone surrogate (which can not be
    encoded at all) is replaced as in plain text."""
    try:
        text = dumps(value)
    except ValueError as exc:
        if "surrogates" not in str(exc):
            raise
        return dumps(_storable_value(value))
    if "\\u0000" in text:
        text = _ESCAPED_NUL.sub(_replace_escaped_nul, text)
    return text


# An escaped NUL: \u0000 whose backslash is not itself escaped, i.e. after an even number
# of other backslashes (each pair of them is one escaped backslash of the text).
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _replace_escaped_nul(match: re.Match[str]) -> str:
    return match.group(1) + "\\ufffd"


def _storable_value(value: Any) -> Any:
    """A JSON value with its strings (keys included) made storable; the same object when
    nothing changed."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        items = [(_storable_value(k), _storable_value(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list):
        values = [_storable_value(v) for v in value]
        if all(v is v0 for v, v0 in zip(values, value, strict=True)):
            return value
        return values
    return value
