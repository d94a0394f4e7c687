"""Any reasoning-gym dataset as a task (`source: {reasoning_gym: {name, config}}`); its `reasoning_gym` verifier is in
harness/verifiers/gym.py.

Data. A split's rg config is `source.reasoning_gym.config` updated by `splits.<name>.params`. Candidates are
rg items 0, 1, 2, ... of `create_dataset(name, seed=<split seed>, size=<draw cap>, **config)` (rg item j is a pure
function of Random(seed + j)); a split keeps, in order, the candidates whose question text hashes into its bucket
(sha256(question) mod the number of splits, buckets by sorted split name, as for procedural generators) and that
it has not kept before. So:
  * sample i of a split is a pure function of (name, config, seed, split sizes and names, i);
  * no question text is in two splits of a task, whatever the seeds and configs (two splits with seeds 1 and 2
    draw almost the same rg items; the buckets still send each question to one split only);
  * no question text appears twice in a split (so a budget counts distinct problems);
  * a split costs about (number of splits) x size rg items to draw; a config too narrow to give `size` distinct
    questions in its bucket within the draw cap is a HarnessError.

Samples: `question` (rg's question), `answer` (the rg entry for the verifier, see below), `oracle_answer` (rg's own
answer string; "" where rg gives none, e.g. propositional_logic), `metadata` (rg's entry metadata, JSON-safe:
tuples and sets become lists), `level` (rg's metadata.difficulty as "key=value, ..."; or pick one with a dotted
`level_field`, e.g. metadata.num_terms).

Verifier. rg's `score_answer(answer, entry)` needs the whole entry (several scorers read entry metadata, some the
dataset's config), while a harness verifier gets `(response, answer: str)` everywhere (evaluation, the GRPO reward,
re-distillation, `harness score`). So a gym sample's `answer` is the entry itself as JSON:
{"rg": name, "config": {...}, "answer": rg answer, "metadata": {...}}, with tuples and sets tagged so the entry
is rebuilt exactly (arc grids are tuples of tuples, compared with ==). `harness data export` writes it, and
`harness score` takes it back. The verifier reads the LAST <answer>...</answer> of the response the way
reasoning_gym.utils.extract_answer does (same match, but linear time), strips it, and scores it with the dataset's
own score_answer. Correct only at score 1.0; the raw score is Verdict.partial (reported as partial_credit_mean).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any, Optional

from harness.errors import HarnessError
from harness.registry import did_you_mean

INSTALL = "pip install -e '.[gym]'"
PER_SPLIT = ("size", "seed")  # rg config fields the harness sets per split


def rg_module() -> Any:
    try:
        import reasoning_gym
    except ImportError:
        raise HarnessError(f"reasoning-gym datasets need the 'reasoning-gym' package: {INSTALL}") from None
    return reasoning_gym


def datasets() -> dict[str, tuple[type, type]]:
    rg_module()
    from reasoning_gym.factory import DATASETS

    return DATASETS


def config_fields(name: str) -> list[str]:
    import dataclasses

    return [f.name for f in dataclasses.fields(datasets()[name][1]) if f.name not in PER_SPLIT]


def key_problems(name: str, config: Any, where: str) -> list[str]:
    """Unknown dataset name or config keys, as 'key.path: problem; fix' strings (empty if fine)."""
    try:
        registry = datasets()
    except HarnessError as e:
        return [f"{where}: {e}"]
    if name not in registry:
        return [
            f"source.reasoning_gym.name: unknown reasoning-gym dataset '{name}'; "
            f"{did_you_mean(name, sorted(registry))}"
        ]
    if not isinstance(config, dict):
        return [f"{where}: must be a mapping of config fields, got {type(config).__name__}"]
    valid = config_fields(name)
    errors = []
    for key in config:
        if key in PER_SPLIT:
            errors.append(f"{where}.{key}: is set per split; write it as splits.<name>.{key}")
        elif key not in valid:
            hint = did_you_mean(str(key), valid)
            hint = f"{hint} " if hint.startswith("did you mean") else ""
            errors.append(
                f"{where}.{key}: '{name}' has no config field '{key}'; {hint}valid fields: {', '.join(valid)}"
            )
    return errors


def value_problems(name: str, config: dict, where: str) -> list[str]:
    try:
        make_dataset(name, _key(config), 0, 1)
    except HarnessError as e:
        return [f"{where}: {e}"]
    return []


def check_task(spec: Any, path: Any, lines: dict) -> list[str]:
    """The task-file checks for gym sources and the reasoning_gym verifier (no torch; imports reasoning_gym)."""
    errors = []
    src = spec.source.reasoning_gym
    if src is not None:
        at = lines.get(("source", "reasoning_gym", "config"), lines.get(("source", "reasoning_gym"), 1))
        bad = key_problems(src.name, src.config, "source.reasoning_gym.config")
        bad = bad or value_problems(src.name, src.config, "source.reasoning_gym.config")
        name_at = lines.get(("source", "reasoning_gym", "name"), at)
        errors += [f"{path}:{name_at if p.startswith('source.reasoning_gym.name') else at}: {p}" for p in bad]
        for split, sp in spec.splits.items():
            if errors:
                break
            if not sp.params:
                continue
            at = lines.get(("splits", split, "params"), lines.get(("splits", split), 1))
            bad = key_problems(src.name, sp.params, f"splits.{split}.params")
            bad = bad or value_problems(src.name, {**src.config, **sp.params}, f"splits.{split} (config + params)")
            errors += [f"{path}:{at}: {p}" for p in bad]
    vline = lines.get(("verifier",), 1)
    if spec.verifier.name == "reasoning_gym":
        if src is None:
            errors.append(
                f"{path}:{vline}: verifier: 'reasoning_gym' scores reasoning-gym entries; use it with "
                "source.reasoning_gym (or pick another verifier)"
            )
        elif spec.answer_field != "answer":
            errors.append(
                f"{path}:{lines.get(('answer_field',), 1)}: answer_field: the reasoning_gym verifier reads "
                "the rg entry in the 'answer' field; remove answer_field"
            )
    elif src is not None and spec.answer_field == "answer":
        errors.append(
            f"{path}:{vline}: verifier: '{spec.verifier.name}' would read the rg entry (JSON) in 'answer'; "
            "use verifier reasoning_gym, or set answer_field: oracle_answer"
        )
    return errors


# ----------------------------------------------------------------------------------------------------- data
def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True)


@lru_cache(maxsize=64)
def make_dataset(name: str, config_key: str, seed: int, size: int) -> Any:
    config = json.loads(config_key)
    try:
        return rg_module().create_dataset(name, seed=seed, size=size, **config)
    except Exception as e:  # config dataclass TypeError, validate() AssertionError, or the dataset's own checks
        raise HarnessError(
            f"reasoning-gym rejected {name} config {config}: {e or type(e).__name__}; fix the config values"
        ) from None


def json_safe(x: Any, tagged: bool = False) -> Any:
    """rg metadata for export: tuples and sets become lists, numpy scalars Python numbers, other objects str.
    tagged: tuples and sets become {"__tuple__": [...]} / {"__set__": [...]} instead, so that _unpack rebuilds them."""
    if isinstance(x, dict):
        return {str(k): json_safe(v, tagged) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        items = [json_safe(v, tagged) for v in x]
        return {"__tuple__": items} if tagged and isinstance(x, tuple) else items
    if isinstance(x, (set, frozenset)):
        if tagged:
            return {"__set__": [json_safe(v, True) for v in sorted(x, key=repr)]}
        return sorted((json_safe(v) for v in x), key=repr)
    if x is None or isinstance(x, (bool, int, float)):
        return x
    if isinstance(x, str):
        return str(x)  # np.str_ -> str
    if hasattr(x, "tolist"):  # numpy scalars and arrays
        return json_safe(x.tolist(), tagged)
    return str(x)


def _unpack(x: Any) -> Any:
    if isinstance(x, list):
        return [_unpack(v) for v in x]
    if isinstance(x, dict):
        if len(x) == 1 and "__tuple__" in x:
            return tuple(_unpack(v) for v in x["__tuple__"])
        if len(x) == 1 and "__set__" in x:
            return {_unpack(v) for v in x["__set__"]}
        return {k: _unpack(v) for k, v in x.items()}
    return x


def _level(metadata: dict) -> Optional[str]:
    d = metadata.get("difficulty")
    if d is None:
        return None
    if isinstance(d, dict):
        return ", ".join(f"{k}={json.dumps(json_safe(v))}" for k, v in d.items())
    return json.dumps(json_safe(d))


def sample_fields(name: str, config: dict, entry: dict) -> dict:
    answer = entry.get("answer")
    envelope = {
        "rg": name,
        "config": config,
        "answer": answer,
        "metadata": json_safe(entry.get("metadata", {}), tagged=True),
    }
    metadata = json_safe(entry.get("metadata", {}))
    return {
        "question": str(entry["question"]),
        "answer": json.dumps(envelope, ensure_ascii=False),
        "oracle_answer": "" if answer is None else str(answer),
        "metadata": metadata,
        "level": _level(metadata),
    }


def _bucket(question: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big") % n


class _Stream:
    """The accepted candidates of one split, drawn lazily and kept (so offsets and limits don't redraw)."""

    def __init__(self, ds: Any, part: int, n_parts: int, cap: int) -> None:
        self.ds, self.part, self.n_parts, self.cap = ds, part, n_parts, cap
        self.next_j = 0
        self.kept: list[dict] = []
        self.seen: set[str] = set()

    def take(self, n: int) -> list[dict]:
        while len(self.kept) < n and self.next_j < self.cap:
            j, self.next_j = self.next_j, self.next_j + 1
            entry = self.ds[j]
            q = str(entry["question"])
            if q not in self.seen and _bucket(q, self.n_parts) == self.part:
                self.seen.add(q)
                self.kept.append(entry)
        return self.kept[:n]


_STREAMS: dict[tuple, _Stream] = {}


def split_fields(spec: Any, split: str, n: int) -> list[dict]:
    """The fields of the first n samples of a gym split (see the module docstring)."""
    src = spec.source.reasoning_gym
    sp = spec.split(split)
    config = {**src.config, **sp.params}
    part, n_parts = spec.partition(split)
    cap = 10 * n_parts * sp.size + 1000
    key = (src.name, _key(config), sp.seed, sp.size, part, n_parts)
    if key not in _STREAMS:
        bad = key_problems(src.name, config, f"splits.{split}") or value_problems(src.name, config, f"splits.{split}")
        if bad:
            raise HarnessError(f"task '{spec.id}': " + "; ".join(bad))
        _STREAMS[key] = _Stream(make_dataset(src.name, _key(config), sp.seed, cap), part, n_parts, cap)
    try:
        entries = _STREAMS[key].take(n)
    except HarnessError:
        raise
    except Exception as e:  # rg generators are third-party code
        raise HarnessError(
            f"task '{spec.id}': reasoning-gym '{src.name}' failed to generate split '{split}' "
            f"(seed {sp.seed}, config {config}): {type(e).__name__}: {e}"
        ) from None
    if len(entries) < n:
        raise HarnessError(
            f"task '{spec.id}': reasoning-gym '{src.name}' with config {config} gave only "
            f"{len(entries)} distinct questions for split '{split}' "
            f"(its bucket {part + 1} of {n_parts}) in {cap} draws; lower splits.{split}.size or widen "
            "the config"
        )
    return [sample_fields(src.name, config, e) for e in entries]
