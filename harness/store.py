"""One owner for runs: typed records (RunRecord, StageInfo) and the runs folder's layout (RunStore).

    <root>/<run_id>/record.json      one record per run (kind run, eval, effect), written atomically
    <root>/<run_id>/samples.jsonl    its per-problem rows
    <root>/_stages/<stage>-<key>/    a cached stage (harness/pipeline.py), complete once stage.json is there
    <root>/_launch/                  compare's launcher files

Every record carries `schema` (SCHEMA_VERSION). Records without one were written before the field existed
(schema 1: the same keys) and read as they are; a record from a newer harness is skipped with one warning line.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Optional

from harness.records import (
    checkpoint_complete,
    newest_complete_checkpoint,
    read_json_or_warn,
    restore_unwritten,
    runs_dir,
    write_record,
)

SCHEMA_VERSION = 2  # 1: records before the field (same keys); 2: `schema` written


@dataclass
class StageInfo:
    """One stage a run used: what it was (stage, key), whether it was reused, what it cost and what it made."""

    stage: str
    key: str
    cached: Optional[bool] = None
    counts: Optional[dict] = None
    metrics: Optional[dict] = None
    wall_seconds: Optional[float] = None
    kept: Optional[int] = None
    prompts_tried: Optional[int] = None
    engine: Optional[str] = None
    data_path: Optional[str] = None
    model_path: Optional[str] = None
    inherited_from: Optional[str] = None

    @property
    def name(self) -> str:  # its folder under _stages
        return f"{self.stage}-{self.key}"

    @classmethod
    def from_dict(cls, d: dict) -> "StageInfo":
        """From a record's stage entry or a stage marker (stage.json, which holds more: config, dir, ...)."""
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})

    def to_dict(self) -> dict:
        return asdict(self)


_COMMON = ("kind", "method", "config", "provenance", "metrics", "wall_seconds")
_RUN_ONLY = ("budget", "counts", "stages", "model_path")


@dataclass
class RunRecord:
    """A run's record. kind `run` (harness run), `eval` (harness eval / lm-eval), `effect` (harness effect).
    `metrics` stays a mapping: its keys depend on the task and the measurement. Keys this class does not name are
    kept in `other` and written back unchanged."""

    kind: str
    method: Optional[str] = None
    config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    wall_seconds: Any = None
    run_id: str = ""
    budget: Optional[int] = None
    counts: Optional[dict] = None
    stages: Optional[list[StageInfo]] = None
    model_path: Optional[str] = None
    schema: int = SCHEMA_VERSION
    path: Optional[Path] = None  # the folder it was read from; never written
    other: dict = field(default_factory=dict)
    absent: frozenset = frozenset()  # keys the JSON it was read from lacked (written back without them)

    @property
    def task(self) -> Optional[str]:
        return self.config.get("task")

    @property
    def seed(self) -> Optional[int]:
        return self.config.get("seed", self.provenance.get("seed"))

    @classmethod
    def from_dict(cls, d: dict, path: Optional[Path] = None) -> "RunRecord":
        named = {f.name for f in fields(cls)} - {"path", "other", "stages", "schema", "absent"}
        stages = d.get("stages")
        return cls(
            **{k: d[k] for k in named if k in d},
            stages=[StageInfo.from_dict(s) for s in stages] if isinstance(stages, list) else None,
            schema=int(d.get("schema", 1)),
            path=Path(path) if path else (Path(d["path"]) if d.get("path") else None),
            other={k: v for k, v in d.items() if k not in named | {"stages", "schema", "path"}},
            absent=frozenset(k for k in _COMMON + _RUN_ONLY if k not in d),
        )

    def to_dict(self, with_path: bool = False) -> dict:
        """The JSON form (what record.json holds); with_path adds `path`, the folder, as readers have used."""
        out: dict[str, Any] = {k: getattr(self, k) for k in _COMMON if k not in self.absent}
        if self.kind == "run" or self.stages is not None:
            out.update({k: getattr(self, k) for k in _RUN_ONLY if k not in self.absent})
            if "stages" not in self.absent:
                out["stages"] = [s.to_dict() for s in self.stages or []]
        out.update(self.other)
        out["schema"] = self.schema
        if self.run_id:
            out["run_id"] = self.run_id
        if with_path and self.path is not None:
            out["path"] = str(self.path)
        return out


class RunStore:
    """The runs folder: its records (list / find / write / restore) and its stage folders (stage_dir / stages)."""

    def __init__(self, root: Optional[str | Path] = None):
        self.root = runs_dir(root)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # --- records ---

    def list(self, kind: Optional[str] = None) -> list[RunRecord]:
        """Every record under root in run-id order (ids start with their time); of one kind if given. A corrupt
        record.json, or one from a newer harness, is skipped with one warning line."""
        out: list[RunRecord] = []
        if not self.root.is_dir():
            return out
        for d in sorted(self.root.iterdir()):
            rec = self._read(d)
            if rec is not None and (kind is None or rec.kind == kind):
                out.append(rec)
        return out

    def _read(self, d: Path) -> Optional[RunRecord]:
        """The record in folder d; None for a folder without one, a corrupt one, or one of a newer schema (warned)."""
        f = d / "record.json"
        if d.name.startswith(".") or not f.is_file():
            return None
        data = read_json_or_warn(f, "a run record")
        if data is None:
            return None
        schema = data.get("schema", 1)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            print(
                f"warning: skipped {f}: a run record of schema {schema!r}, newer than this harness reads "
                f"({SCHEMA_VERSION}); upgrade the harness to read it",
                file=sys.stderr,
                flush=True,
            )
            return None
        return RunRecord.from_dict(data, path=d)

    def dicts(self, kind: Optional[str] = None) -> list[dict]:
        """The records as JSON objects with their folder as `path`: for the readers that work on the JSON form
        (the leaderboard's table builder, compare's cell keys)."""
        return [r.to_dict(with_path=True) for r in self.list(kind)]

    def find(self, run_id: str, kind: Optional[str] = None) -> Optional[RunRecord]:
        """The record of run_id: read from its own folder (records are written under their id), else looked for
        among all (a folder renamed by hand)."""
        plain = run_id and "/" not in run_id and "\\" not in run_id and run_id not in (".", "..")
        if plain and (self.root / run_id / "record.json").is_file():
            rec = self._read(self.root / run_id)
            if rec is None or rec.run_id == run_id:  # found, or damaged / newer: skipped with its one warning
                return rec if rec is not None and kind in (None, rec.kind) else None
        rec = next((r for r in self.list() if r.run_id == run_id), None)
        return rec if rec is not None and kind in (None, rec.kind) else None

    def write(
        self, record: RunRecord, samples: Iterable[dict] = (), extra_files: Optional[dict[str, str]] = None
    ) -> Path:
        """Write the record's folder, all or nothing (harness.records.write_record); record.run_id names it."""
        if not record.run_id:
            raise ValueError("a record needs its run_id before it is written")
        record.path = write_record(self.root, record.run_id, record.to_dict(), samples, extra_files)
        return record.path

    def restore(self, kept: Path) -> Path:
        """Write a record that a full disk kept aside (harness runs restore)."""
        return restore_unwritten(kept, self.root)

    # --- stages ---

    @property
    def stages_root(self) -> Path:
        return self.root / "_stages"

    @property
    def launch_dir(self) -> Path:
        return self.root / "_launch"

    def stage_dir(self, stage: str | StageInfo, key: Optional[str] = None) -> Path:
        """The folder of stage `stage`-`key` (or of a StageInfo), whether it exists or not."""
        name = stage.name if isinstance(stage, StageInfo) else f"{stage}-{key}"
        return self.stages_root / name

    def stages(self) -> list[dict]:
        """Every stage folder: complete (stage.json written) or partial, with its checkpoints and the complete one
        a rerun resumes from (`resumable_from`; None: it trains from the start)."""
        out = []
        if not self.stages_root.is_dir():
            return out
        for d in sorted(self.stages_root.iterdir()):
            if not d.is_dir() or d.name.startswith("."):
                continue
            marker = d / "stage.json"
            info = read_json_or_warn(marker, "a stage marker") if marker.is_file() else {}
            if info is None:
                continue
            ckpts = sorted(p.name + ("" if checkpoint_complete(p) else " (incomplete)") for p in d.glob("checkpoint-*"))
            resume = None if marker.is_file() else newest_complete_checkpoint(d)
            out.append(
                {
                    "name": d.name,
                    "complete": marker.is_file(),
                    "wall_seconds": info.get("wall_seconds"),
                    "checkpoints": ckpts,
                    "resumable_from": resume.name if resume else None,
                }
            )
        return out
