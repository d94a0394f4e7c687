"""Task files: YAML validated into a frozen TaskSpec that rejects unknown keys.

Errors name the file, the line, the key path and a fix, and every error in a file is reported at once.
"""

from __future__ import annotations

import hashlib
import re
import string
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import HarnessError
from harness.registry import did_you_mean


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratorSource(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class FileSource(_Strict):
    path: str
    format: Literal["auto", "jsonl", "json", "csv", "parquet"] = "auto"


class HubSource(_Strict):
    path: str
    name: Optional[str] = None
    revision: Optional[str] = None


class GymSource(_Strict):
    """A reasoning-gym dataset (harness/gym.py): its registered name and config fields (size and seed are per split)."""

    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class Source(_Strict):
    """Exactly one of generator / file / hf / reasoning_gym, plus a mapping from task field to source column."""

    generator: Optional[GeneratorSource] = None
    file: Optional[FileSource] = None
    hf: Optional[HubSource] = None
    reasoning_gym: Optional[GymSource] = None
    columns: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> "Source":
        kinds = [k for k in ("generator", "file", "hf", "reasoning_gym") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of 'generator', 'file', 'hf' or 'reasoning_gym' (found: "
                + (", ".join(kinds) or "none")
                + ")"
            )
        return self

    @property
    def kind(self) -> str:
        return "generator" if self.generator else "file" if self.file else "hf" if self.hf else "reasoning_gym"


class Split(_Strict):
    """A named split. Generator and reasoning_gym sources: size, seed and params (generator params / rg config).
    File / hub sources: the source split (`from`, a hub split name or a file path), an optional seeded shuffle and a
    [start, stop) window over the shuffled rows (so several splits can partition one source split)."""

    size: Optional[int] = Field(default=None, ge=1)
    seed: int = 0
    params: dict[str, Any] = Field(default_factory=dict)
    from_: Optional[str] = Field(default=None, alias="from")
    shuffle: bool = False
    start: int = Field(default=0, ge=0)
    # This split's own rows (file or hf), e.g. a separate hub dataset for the test split; default: the task's source.
    source: Optional[Source] = None

    @model_validator(mode="after")
    def _rows_source(self) -> "Split":
        if self.source is not None and self.source.kind not in ("file", "hf"):
            raise ValueError(f"a split's own source must be 'file' or 'hf', not '{self.source.kind}'")
        return self


class Prompt(_Strict):
    template: str
    system: Optional[str] = None
    chat: bool = True

    @model_validator(mode="after")
    def _fields_parse(self) -> "Prompt":
        try:
            list(string.Formatter().parse(self.template))
        except ValueError as e:
            raise ValueError(f"template is not a valid format string ({e}); write literal braces as '{{{{' and '}}}}'")
        return self

    @property
    def fields(self) -> list[str]:
        return [f for _, f, _, _ in string.Formatter().parse(self.template) if f]


class VerifierRef(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Generation(_Strict):
    max_new_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    stop: list[str] = Field(default_factory=list)


class TaskSpec(_Strict):
    id: str
    description: str
    source: Source
    splits: dict[str, Split]
    prompt: Prompt
    answer_field: str = "answer"
    answer_pattern: Optional[str] = None  # regex over answer_field's value; group 1 (or the match) is the answer
    level_field: Optional[str] = None
    id_field: Optional[str] = None
    traces: dict[str, str] = Field(default_factory=dict)  # style -> field holding a reference trace
    verifier: VerifierRef
    generation: Generation = Field(default_factory=Generation)
    path: Optional[str] = None
    sha256: Optional[str] = None

    @model_validator(mode="after")
    def _splits(self) -> "TaskSpec":
        if not self.splits:
            raise ValueError("define at least one split, e.g. 'test: {size: 100, seed: 3}'")
        if self.answer_pattern is not None:
            try:
                re.compile(self.answer_pattern)
            except re.error as e:
                raise ValueError(f"answer_pattern {self.answer_pattern!r} does not compile: {e}")
        if self.source.kind in ("generator", "reasoning_gym"):
            missing = [n for n, s in self.splits.items() if s.size is None and s.source is None]
            if missing:
                raise ValueError(f"{self.source.kind} splits need a size: {', '.join(missing)}")
        return self

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise HarnessError(f"task '{self.id}' has no split '{name}': {did_you_mean(name, list(self.splits))}")
        return self.splits[name]

    def build_verifier(self) -> Any:
        """The task's verifier object (its registered name built with its params): the one reward, filter and metric."""
        from harness.verifiers import get_verifier

        return get_verifier(self.verifier.name, self.verifier.params)

    def partition(self, split: str) -> tuple[int, int]:
        """Procedural splits own disjoint buckets of puzzle space (by sorted split name)."""
        names = sorted(self.splits)
        return names.index(split), len(names)


# --- loading with line numbers -----------------------------------------------------------------------------

MAX_YAML_VALUES = 100_000  # values of a YAML file with every alias expanded; a task file or recipe has hundreds


def yaml_size_problem(node: Optional[yaml.Node]) -> Optional[str]:
    """Why a composed YAML tree is unsafe to expand, or None. Aliases share nodes, so a few lines can expand to
    billions of values ("billion laughs") or refer to themselves; both are counted here without expanding anything
    (each distinct node once), before any code walks the tree."""
    if node is None:
        return None

    def children(n: yaml.Node) -> list:
        if isinstance(n, yaml.MappingNode):
            return [c for kv in n.value for c in kv]
        return list(n.value) if isinstance(n, yaml.SequenceNode) else []

    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        n, done = stack.pop()
        if done:
            open_.discard(id(n))
            size[id(n)] = min(1 + sum(size[id(c)] for c in children(n)), MAX_YAML_VALUES + 1)
            continue
        if id(n) in size:
            continue
        if id(n) in open_:
            return (
                f"{n.start_mark.line + 1}: a YAML alias refers to a value that contains it (a recursive anchor); "
                "remove the recursion"
            )
        open_.add(id(n))
        stack.append((n, True))
        stack.extend((c, False) for c in children(n) if id(c) not in size)
    if size[id(node)] > MAX_YAML_VALUES:
        return (
            f"1: the YAML expands to more than {MAX_YAML_VALUES:,} values once its aliases (*name) are expanded, "
            "a denial-of-service pattern ('billion laughs'); write the repeated values out, or use fewer "
            "anchors and aliases"
        )
    return None


def _line_index(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path in a composed YAML tree to its 1-based line number."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = (*path, k.value)
            out[key] = k.start_mark.line + 1
            _line_index(v, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _line_index(v, (*path, i), out)
    return out


def _fix_hint(err: dict, model_fields: dict[tuple, list[str]]) -> str:
    loc = tuple(str(x) for x in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = loc[:-1]
        allowed = model_fields.get(parent, [])
        return did_you_mean(loc[-1], allowed) if allowed else "remove this key"
    if kind == "missing":
        return f"add the key '{loc[-1]}'"
    return "fix the value"


def _allowed_keys(data: dict) -> dict[tuple, list[str]]:
    """Known keys per mapping location, for "did you mean" on unknown keys."""

    def names(model: type[BaseModel]) -> list[str]:
        return [f.alias or n for n, f in model.model_fields.items()]

    out: dict[tuple, list[str]] = {(): [n for n in names(TaskSpec) if n not in ("id", "path", "sha256")]}
    out[("source",)] = names(Source)
    out[("source", "generator")] = names(GeneratorSource)
    out[("source", "file")] = names(FileSource)
    out[("source", "hf")] = names(HubSource)
    out[("source", "reasoning_gym")] = names(GymSource)
    out[("prompt",)] = names(Prompt)
    out[("verifier",)] = names(VerifierRef)
    out[("generation",)] = names(Generation)
    for split in (data.get("splits") or {}) if isinstance(data.get("splits"), dict) else {}:
        out[("splits", str(split))] = names(Split)
    return out


def validate_file(path: Path, task_id: Optional[str] = None) -> tuple[Optional[TaskSpec], list[str]]:
    """Parse and validate one task file; return (spec or None, every error message)."""
    path = Path(path)
    if not path.is_file():
        return None, [f"{path}: no such file; check the path"]
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        problem = yaml_size_problem(node)
        if problem:
            return None, [f"{path}:{problem}"]
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        return None, [f"{path}{line}: invalid YAML: {problem}; fix the syntax (indentation, quotes, colons)"]
    except RecursionError:
        return None, [
            f"{path}: the YAML is nested too deeply to read; a task file needs a few levels, fix the brackets"
        ]
    if not isinstance(data, dict):
        return None, [
            f"{path}:1: a task file must be a mapping of keys (description, source, splits, prompt, verifier, ...)"
        ]
    lines = _line_index(node) if node is not None else {}
    tid = task_id or path.stem
    errors: list[str] = []
    for reserved in ("id", "path", "sha256"):
        if reserved in data:
            errors.append(
                f"{path}:{lines.get((reserved,), 1)}: {reserved}: is set by the harness; remove it "
                "(the task id is the file path without the extension)"
            )
            data.pop(reserved)
    spec = None
    try:
        spec = TaskSpec.model_validate(
            {**data, "id": tid, "path": str(path), "sha256": hashlib.sha256(raw).hexdigest()}
        )
    except ValidationError as e:
        allowed = _allowed_keys(data)
        for err in e.errors():
            loc = tuple(err["loc"])
            key_loc = tuple(x for x in loc if not (isinstance(x, str) and x.startswith("function-")))
            line = next((lines[key_loc[:i]] for i in range(len(key_loc), -1, -1) if key_loc[:i] in lines), 1)
            keypath = ".".join(str(x) for x in key_loc) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            # Our own validators already say how to fix the value; pydantic's built-in checks do not.
            fix = "" if err["type"] == "value_error" else f"; {_fix_hint({**err, 'loc': key_loc}, allowed)}"
            errors.append(f"{path}:{line}: {keypath}: {msg}{fix}")
    if spec is not None:
        errors += _check_references(spec, path, lines)
        if errors:
            spec = None
    return spec, errors


def _check_references(spec: TaskSpec, path: Path, lines: dict) -> list[str]:
    """Names that must resolve in a registry: the verifier and the generator."""
    from harness.generators import GENERATORS

    errors = []
    try:
        spec.build_verifier()
    except HarnessError as e:
        errors.append(f"{path}:{lines.get(('verifier',), 1)}: verifier: {e}")
    if spec.source.generator is not None and spec.source.generator.name not in GENERATORS:
        errors.append(
            f"{path}:{lines.get(('source', 'generator', 'name'), 1)}: source.generator.name: "
            f"unknown generator '{spec.source.generator.name}'; {GENERATORS.fix(spec.source.generator.name)}"
        )
    if spec.source.reasoning_gym is not None or spec.verifier.name == "reasoning_gym":
        from harness.gym import check_task

        errors += check_task(spec, path, lines)
    checked = set()
    for name, sp in spec.splits.items():
        where, src = (("splits", name, "source"), sp.source) if sp.source is not None else (("source",), spec.source)
        if src.file is None:
            continue
        try:
            f = resolve_data_path(spec, src.file.path.format(split=sp.from_ or name))
        except (KeyError, IndexError, ValueError):
            errors.append(
                f"{path}:{lines.get((*where, 'file', 'path'), 1)}: {'.'.join(where)}.file.path: "
                f"{src.file.path!r} may hold only the placeholder {{split}}; double other braces"
            )
            continue
        if f not in checked and not f.exists():
            errors.append(
                f"{path}:{lines.get((*where, 'file', 'path'), 1)}: {'.'.join(where)}.file.path: "
                f"data file {f} does not exist; give a path relative to the task file or an absolute one"
            )
        checked.add(f)
    return errors


def resolve_data_path(spec: TaskSpec, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() or spec.path is None else Path(spec.path).parent / q


def load_file(path: Path, task_id: Optional[str] = None) -> TaskSpec:
    spec, errors = validate_file(path, task_id)
    if errors:
        raise HarnessError(f"{len(errors)} error(s) in task file:\n  " + "\n  ".join(errors))
    assert spec is not None
    return spec
