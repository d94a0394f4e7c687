"""Data sources: a task's split as a list of samples.

Every sample is a dict with `id`, `index`, the task's fields, `answer`, `level`, `traces` and `metadata`.
Sample i of a procedural split is a pure function of (seed, split, i); file and hub splits are a seeded,
windowed view of the source rows.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError
from harness.taskspec import TaskSpec, resolve_data_path


def load_split(spec: TaskSpec, split: str, limit: Optional[int] = None, offset: int = 0) -> list[dict]:
    """Samples [offset, limit) of a split (limit counts from the split's start)."""
    sp = spec.split(split)
    if limit is not None and limit < 1:
        raise HarnessError(f"--limit must be at least 1 (got {limit})")
    if spec.source.generator is not None:
        from harness.generators import GENERATORS

        gen = GENERATORS.get(spec.source.generator.name)
        params = {**spec.source.generator.params, **sp.params}
        n = sp.size if limit is None else min(limit, sp.size)
        rows = []
        for i in range(offset, n):
            try:
                fields = gen(seed=sp.seed, split=split, index=i, partition=spec.partition(split), **params)
            except TypeError as e:
                raise HarnessError(f"task '{spec.id}': generator '{spec.source.generator.name}' rejected its params "
                                   f"{params}: {e}; fix source.generator.params or splits.{split}.params") from None
            rows.append(_sample(spec, split, i, fields))
        return rows
    rows = _source_rows(spec, sp.from_ or split)
    if sp.shuffle:
        random.Random(sp.seed).shuffle(rows)
    stop = len(rows) if sp.size is None else sp.start + sp.size
    if stop > len(rows):
        raise HarnessError(f"task '{spec.id}' split '{split}' wants rows [{sp.start}, {stop}) but the source has "
                           f"{len(rows)}; lower splits.{split}.size or start")
    window = rows[sp.start:stop]
    if limit is not None:
        window = window[:limit]
    return [_sample(spec, split, sp.start + i, _map_columns(spec, r)) for i, r in enumerate(window) if i >= offset]


def _map_columns(spec: TaskSpec, row: dict) -> dict:
    out = dict(row)
    for field, column in spec.source.columns.items():
        if column not in row:
            raise HarnessError(f"task '{spec.id}': source column '{column}' (mapped to '{field}') is not in the data; "
                               f"columns are: {', '.join(map(str, row))}")
        out[field] = row[column]
    return out


def _sample(spec: TaskSpec, split: str, index: int, fields: dict) -> dict:
    if spec.answer_field not in fields:
        raise HarnessError(f"task '{spec.id}': samples have no answer field '{spec.answer_field}'; set answer_field "
                           f"or map a column to it (fields: {', '.join(map(str, fields))})")
    sid = fields.get(spec.id_field) if spec.id_field else None
    traces = {style: _dig(fields, key) for style, key in spec.traces.items()}
    return {
        **{k: v for k, v in fields.items() if k not in ("traces", "metadata")},
        "id": str(sid) if sid is not None else f"{spec.id}/{split}/{index}",
        "index": index,
        "answer": str(fields[spec.answer_field]),
        "level": fields.get(spec.level_field) if spec.level_field else fields.get("level"),
        "traces": {k: v for k, v in traces.items() if v is not None},
        "metadata": fields.get("metadata", {}),
    }


def _dig(fields: dict, dotted: str) -> Any:
    cur: Any = fields
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _source_rows(spec: TaskSpec, source_split: str) -> list[dict]:
    if spec.source.file is not None:
        path = resolve_data_path(spec, spec.source.file.path.format(split=source_split))
        return read_rows(path, spec.source.file.format)
    hub = spec.source.hf
    assert hub is not None
    try:
        import datasets
    except ImportError:
        raise HarnessError("hub datasets need the 'datasets' package: pip install -e '.[train]'") from None
    try:
        ds = datasets.load_dataset(hub.path, hub.name, split=source_split, revision=hub.revision)
    except Exception as e:  # the hub raises many types; the user needs one message
        raise HarnessError(f"could not load dataset '{hub.path}' (split '{source_split}') from the Hugging Face hub: "
                           f"{type(e).__name__}: {e}. Without hub access, download it elsewhere and use "
                           "source.file with a local path") from None
    return [dict(r) for r in ds]


def read_rows(path: Path, fmt: str = "auto") -> list[dict]:
    if not path.is_file():
        raise HarnessError(f"data file {path} does not exist; check source.file.path (relative to the task file)")
    fmt = path.suffix.lstrip(".").lower() if fmt == "auto" else fmt
    try:
        if fmt == "jsonl":
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if fmt == "json":
            data = json.loads(path.read_text())
            return data if isinstance(data, list) else data.get("data") or data.get("rows") or [data]
        if fmt == "csv":
            import csv

            with path.open(newline="") as f:
                return list(csv.DictReader(f))
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
    except (ValueError, OSError) as e:
        raise HarnessError(f"could not read {path} as {fmt}: {e}; fix the file or set source.file.format") from None
    raise HarnessError(f"unknown data format '{fmt}' for {path}; use jsonl, json, csv or parquet")


def render_prompt(spec: TaskSpec, sample: dict) -> list[dict] | str:
    """Chat tasks give messages (the engine applies the model's chat template); raw tasks give the text."""
    try:
        user = spec.prompt.template.format_map(sample)
    except (KeyError, IndexError) as e:
        raise HarnessError(f"task '{spec.id}': prompt.template uses field {e} that samples do not have "
                           f"(fields: {', '.join(sorted(sample))})") from None
    if not spec.prompt.chat:
        return user
    messages = [{"role": "system", "content": spec.prompt.system}] if spec.prompt.system else []
    return messages + [{"role": "user", "content": user}]
