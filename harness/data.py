"""Data sources: a task's split as a list of samples.

Every sample is a dict with `id`, `index`, the task's fields, `answer`, `level`, `traces` and `metadata`.
Sample i of a procedural split is a pure function of (seed, split, i), and no puzzle comes twice in a split;
file and hub splits are a seeded, windowed view of the source rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError
from harness.taskspec import Source, TaskSpec, resolve_data_path

DATA_DIR_ENV = "HARNESS_DATA_DIR"


def load_split(
    spec: TaskSpec, split: str, limit: Optional[int] = None, offset: int = 0, partial: bool = False
) -> list[dict]:
    """Samples [offset, limit) of a split (limit counts from the split's start). `partial`: a file / hub split whose
    source is shorter than its window gives the rows it has instead of an error (the tiny model's corpus on a
    sample)."""
    sp = spec.split(split)
    if limit is not None and limit < 1:
        raise HarnessError(f"--limit must be at least 1 (got {limit})")
    if spec.source.reasoning_gym is not None and sp.source is None:
        from harness.gym import split_fields

        n = sp.size if limit is None else min(limit, sp.size)
        return [_sample(spec, split, i, f) for i, f in enumerate(split_fields(spec, split, n)) if i >= offset]
    if spec.source.generator is not None and sp.source is None:
        n = sp.size if limit is None else min(limit, sp.size)
        return [_sample(spec, split, i, fields) for i, fields in _generated(spec, split, offset, n)]
    src = sp.source or spec.source
    rows = _source_rows(spec, src, sp.from_ or split)
    if sp.shuffle:
        random.Random(sp.seed).shuffle(rows)
    stop = len(rows) if sp.size is None else sp.start + sp.size
    if partial:
        stop = min(stop, len(rows))
    if stop > len(rows):
        raise HarnessError(
            f"task '{spec.id}' split '{split}' wants rows [{sp.start}, {stop}) but the source has "
            f"{len(rows)}; lower splits.{split}.size or start"
        )
    window = rows[sp.start : stop]
    if limit is not None:
        window = window[:limit]
    return [
        _sample(spec, split, sp.start + i, _map_columns(spec, r, src.columns))
        for i, r in enumerate(window)
        if i >= offset
    ]


MAX_REDRAWS = 64  # per sample: a split whose puzzles keep repeating is too small for its params


def puzzle_key(fields: dict) -> str:
    """A puzzle's identity: the generator's canonical `metadata.key` (K&K: its statements, countdown: the numbers
    and target), else a hash of the sample's fields (question, answer, ...) without traces and metadata."""
    key = (fields.get("metadata") or {}).get("key")
    if key is not None:
        return str(key)
    text = json.dumps({k: v for k, v in fields.items() if k not in ("traces", "metadata")}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# (generator, seed, split, partition, params) -> (keys of the split's prefix, the redraw that made each sample):
# `offset` reads only need the prefix's keys, and a chunked reader (re-distillation) pays for each sample once.
_PREFIX: dict[tuple, tuple[list[str], list[int]]] = {}


def _generated(spec: TaskSpec, split: str, offset: int, n: int) -> list[tuple[int, dict]]:
    """Samples [offset, n) of a generator split, with no puzzle twice in the split. Sample i whose puzzle repeats an
    earlier one is redrawn from the same index under the split names `split~1`, `split~2`, ...: the index, hence its
    level (index % levels), stays; and it is still a pure function of (seed, split, i)."""
    from harness.generators import GENERATORS

    sp = spec.split(split)
    name = spec.source.generator.name
    gen = GENERATORS.get(name)
    params = {**spec.source.generator.params, **sp.params}
    partition = spec.partition(split)

    def make(i: int, redraw: int) -> dict:
        try:
            return gen(
                seed=sp.seed,
                split=split if redraw == 0 else f"{split}~{redraw}",
                index=i,
                partition=partition,
                **params,
            )
        except TypeError as e:
            raise HarnessError(
                f"task '{spec.id}': generator '{name}' rejected its params "
                f"{params}: {e}; fix source.generator.params or splits.{split}.params"
            ) from None
        except (RuntimeError, ValueError) as e:  # bad values, or no puzzle fits them
            raise HarnessError(
                f"task '{spec.id}' split '{split}': generator '{name}' "
                f"cannot make sample {i} with params {params}: {e}; fix source.generator.params "
                f"or splits.{split}.params"
            ) from None

    cache_key = (gen, sp.seed, split, partition, json.dumps(params, sort_keys=True, default=str))
    keys, redraws = _PREFIX.setdefault(cache_key, ([], []))
    out = [(i, make(i, redraws[i])) for i in range(offset, min(n, len(keys)))]
    seen = set(keys)
    for i in range(len(keys), n):
        for redraw in range(MAX_REDRAWS + 1):
            fields = make(i, redraw)
            key = puzzle_key(fields)
            if key not in seen:
                break
        else:
            raise HarnessError(
                f"task '{spec.id}' split '{split}' cannot hold {sp.size} distinct puzzles: only {i} "
                f"were found (sample {i}, level {fields.get('level')}, repeated an earlier puzzle "
                f"{MAX_REDRAWS + 1} times) with params {params}; lower splits.{split}.size or widen "
                f"splits.{split}.params / source.generator.params"
            )
        seen.add(key)
        keys.append(key)
        redraws.append(redraw)
        if i >= offset:
            out.append((i, fields))
    return out


def _map_columns(spec: TaskSpec, row: dict, columns: dict[str, str]) -> dict:
    out = dict(row)
    for field, column in columns.items():
        if column not in row:
            raise HarnessError(
                f"task '{spec.id}': source column '{column}' (mapped to '{field}') is not in the data; "
                f"columns are: {', '.join(map(str, row))}"
            )
        out[field] = row[column]
    return out


def _sample(spec: TaskSpec, split: str, index: int, fields: dict) -> dict:
    if spec.answer_field not in fields:
        raise HarnessError(
            f"task '{spec.id}': samples have no answer field '{spec.answer_field}'; set answer_field "
            f"or map a column to it (fields: {', '.join(map(str, fields))})"
        )
    sid = fields.get(spec.id_field) if spec.id_field else None
    traces = {style: _dig(fields, key) for style, key in spec.traces.items()}
    return {
        **{k: v for k, v in fields.items() if k not in ("traces", "metadata")},
        "id": str(sid) if sid is not None else f"{spec.id}/{split}/{index}",
        "index": index,
        "answer": _answer(spec, fields),
        "level": _dig(fields, spec.level_field) if spec.level_field else fields.get("level"),  # dotted: metadata.x
        "traces": {k: v for k, v in traces.items() if v is not None},
        "metadata": fields.get("metadata", {}),
    }


def _answer(spec: TaskSpec, fields: dict) -> str:
    answer = str(fields[spec.answer_field])
    if spec.answer_pattern is None:
        return answer
    m = re.search(spec.answer_pattern, answer)
    if m is None:
        raise HarnessError(
            f"task '{spec.id}': answer_pattern {spec.answer_pattern!r} does not match the answer field "
            f"{answer[-200:]!r}; fix the data or the pattern"
        )
    return (m.group(1) if m.re.groups else m.group(0)).strip()


def _dig(fields: dict, dotted: str) -> Any:
    cur: Any = fields
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def local_data_file(spec: TaskSpec, source_split: str) -> Optional[Path]:
    """`$HARNESS_DATA_DIR/<task id>/<source split>.{jsonl,json,csv,parquet}`: local rows that take the place of a
    hub split, so a hub task runs offline without editing its YAML."""
    root = os.environ.get(DATA_DIR_ENV)
    if not root:
        return None
    for ext in ("jsonl", "json", "csv", "parquet"):
        p = Path(root).expanduser() / spec.id / f"{source_split}.{ext}"
        if p.is_file():
            return p
    return None


def _source_rows(spec: TaskSpec, src: Source, source_split: str) -> list[dict]:
    if src.file is not None:
        path = resolve_data_path(spec, src.file.path.format(split=source_split))
        return read_rows(path, src.file.format)
    local = local_data_file(spec, source_split)
    if local is not None:
        return read_rows(local)
    hub = src.hf
    assert hub is not None
    try:
        import datasets
    except ImportError:
        raise HarnessError("hub datasets need the 'datasets' package: pip install -e '.[train]'") from None
    from harness.hub import hub_offline_unless_reachable

    try:
        with hub_offline_unless_reachable():  # unreachable: a cached copy still loads; else fail in seconds
            ds = datasets.load_dataset(hub.path, hub.name, split=source_split, revision=hub.revision)
    except Exception as e:  # the hub raises many types; the user needs one message
        raise HarnessError(
            f"could not load dataset '{hub.path}' (split '{source_split}') from the Hugging Face hub: "
            f"{type(e).__name__}: {str(e)[:300]}. Without hub access, pass local files: put the rows "
            f"of '{source_split}' in ${DATA_DIR_ENV}/{spec.id}/{source_split}.jsonl (or .json, .csv, "
            ".parquet) and set that variable, or use source.file with a local path"
        ) from None
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
        raise HarnessError(
            f"task '{spec.id}': prompt.template uses field {e} that samples do not have "
            f"(fields: {', '.join(sorted(sample))})"
        ) from None
    if not spec.prompt.chat:
        return user
    messages = [{"role": "system", "content": spec.prompt.system}] if spec.prompt.system else []
    return messages + [{"role": "user", "content": user}]
