"""Run records: one folder per run, written atomically (temporary name, then rename).

A folder named like a run id always holds a complete record; a crash leaves only a `.tmp-*` folder,
which readers ignore.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Optional

import harness

RUNS_ENV = "HARNESS_RUNS_DIR"
PACKAGES = ("torch", "transformers", "trl", "tokenizers", "accelerate", "datasets", "vllm", "lm_eval", "pydantic")


def runs_dir(override: Optional[str | Path] = None) -> Path:
    return Path(override or os.environ.get(RUNS_ENV) or "runs")


def new_run_id(*parts: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    slug = "-".join(p.replace("/", "_") for p in parts if p)
    return f"{stamp}-{slug}-{uuid.uuid4().hex[:6]}"


def git_sha() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(harness.__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> dict:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "machine": platform.machine()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


def provenance(seed: int, task=None) -> dict:
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    prov = {"harness_version": harness.__version__, "git_sha": git_sha(), "packages": versions, "seed": seed,
            "hardware": hardware(), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if task is not None:
        prov.update({"task": task.id, "task_file": task.path, "task_sha256": task.sha256,
                     "verifier": {"name": task.verifier.name, "params": task.verifier.params},
                     "splits": {k: v.model_dump(by_alias=True) for k, v in task.splits.items()}})
    return prov


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:6]}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_record(root: Path, run_id: str, record: dict, samples: Iterable[dict] = (),
                 extra_files: Optional[dict[str, str]] = None) -> Path:
    """Write record.json + samples.jsonl (+ extra files) into runs/<run_id>, all or nothing."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / run_id
    if final.exists():
        raise FileExistsError(f"run folder {final} already exists")
    tmp = root / f".tmp-{run_id}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        with (tmp / "samples.jsonl").open("w") as f:
            for s in samples:
                f.write(json.dumps(s, sort_keys=True, default=_json_default) + "\n")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        (tmp / "record.json").write_text(dumps({**record, "run_id": run_id}))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_json_or_warn(f: Path, what: str) -> Optional[dict]:
    """The JSON object in file f, or None after one warning line on stderr naming the file (truncated, not UTF-8,
    not an object, unreadable): one corrupt file must not stop the commands that read them all."""
    try:
        data = json.loads(f.read_bytes().decode("utf-8"))
        problem = None if isinstance(data, dict) else f"a JSON {type(data).__name__}, not an object"
    except UnicodeDecodeError:
        problem = "not UTF-8 text"
    except ValueError as e:
        problem = f"not valid JSON ({e})"
    except RecursionError:
        problem = "JSON nested too deeply"
    except OSError as e:
        problem = f"unreadable ({e.strerror or e})"
    if problem is None:
        return data
    print(f"warning: skipped {f}: {what} that is {problem}; delete or move it away", file=sys.stderr, flush=True)
    return None


def read_records(root: Path) -> list[dict]:
    """Every run record under root, in run-id order; a corrupt record.json is skipped with one warning line."""
    out = []
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        f = d / "record.json"
        if d.name.startswith(".") or not f.is_file():
            continue
        rec = read_json_or_warn(f, "a run record")
        if rec is not None:
            out.append({**rec, "path": str(d)})
    return out


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()[:12]
