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
from harness.errors import HarnessError
from harness.plugins import provenance as loaded_plugins

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
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(harness.__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> Optional[str]:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform says, else None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def hardware() -> dict:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        # the kernels torch picked for this CPU: float results (and so training) are reproduced bit for bit on the
        # same CPU and kernels, not across them
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
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
    prov = {
        "harness_version": harness.__version__,
        "git_sha": git_sha(),
        "packages": versions,
        "seed": seed,
        "hardware": hardware(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    plugins = loaded_plugins()
    if plugins:  # only then: records made without plugins stay as they were
        prov["plugins"] = plugins
    if task is not None:
        prov.update(
            {
                "task": task.id,
                "task_file": task.path,
                "task_sha256": task.sha256,
                "verifier": {"name": task.verifier.name, "params": task.verifier.params},
                "splits": {k: v.model_dump(by_alias=True) for k, v in task.splits.items()},
            }
        )
    return prov


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write text (or bytes) to path through a temporary file in the same folder and a rename: path is either as
    before or complete, and the temporary file is removed when anything fails (disk full, path is a folder, Ctrl-C)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:6]}")
    try:
        if isinstance(text, bytes):
            tmp.write_bytes(text)
        else:
            tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def write_record(
    root: Path, run_id: str, record: dict, samples: Iterable[dict] = (), extra_files: Optional[dict[str, str]] = None
) -> Path:
    """Write record.json + samples.jsonl (+ extra files) into runs/<run_id>, all or nothing.

    When the disk refuses (full, read-only, quota), the finished results are not lost: they are saved as one JSON
    file (`keep_unwritten`) and the HarnessError says where and how to restore them (`harness runs restore`)."""
    samples = list(samples)
    final = root / run_id
    if final.exists():
        raise FileExistsError(f"run folder {final} already exists")
    tmp = root / f".tmp-{run_id}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        with (tmp / "samples.jsonl").open("w") as f:
            for s in samples:
                f.write(json.dumps(s, sort_keys=True, default=_json_default) + "\n")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        (tmp / "record.json").write_text(dumps({**record, "run_id": run_id}))
        os.replace(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = keep_unwritten(root, run_id, record, samples, extra_files)
        why = e.strerror or str(e)
        if kept is None:
            metrics = {k: v for k, v in (record.get("metrics") or {}).items() if isinstance(v, (int, float, str))}
            raise HarnessError(
                f"could not write the run record {final} ({why}), nor save its results anywhere else; "
                "free disk space and run the command again. "
                f"Its metrics: {json.dumps(metrics)}"
            ) from None
        raise HarnessError(
            f"could not write the run record {final} ({why}); its finished results are kept in {kept}: "
            f"free disk space, then run `harness runs restore {kept} --runs-dir {root}`"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def keep_unwritten(root: Path, run_id: str, record: dict, samples: list, extra_files: Optional[dict]) -> Optional[Path]:
    """Save a record that could not be written as one JSON file: next to the runs (a dot-file, which readers ignore),
    else in the temporary folder (often another file system). The path, or None if nowhere took it."""
    import tempfile

    text = json.dumps(
        {"run_id": run_id, "record": record, "samples": samples, "extra_files": extra_files or {}},
        default=_json_default,
    )
    for where in (root / f".unwritten-{run_id}.json", Path(tempfile.gettempdir()) / f"harness-unwritten-{run_id}.json"):
        try:
            write_atomic(where, text)
            return where
        except OSError:
            continue
    return None


def restore_unwritten(path: Path, root: Path) -> Path:
    """Write the record kept by keep_unwritten into root, then remove the kept file."""
    data = read_json_or_warn(path, "a kept run record") if Path(path).is_file() else None
    if data is None or not {"run_id", "record", "samples"} <= set(data):
        raise HarnessError(f"{path} is not a run record kept by the harness (harness-unwritten-*.json); check the path")
    final = write_record(root, data["run_id"], data["record"], data["samples"], data.get("extra_files"))
    Path(path).unlink()
    return final


def read_json_object(f: Path) -> tuple[Optional[dict], Optional[str]]:
    """(the JSON object in file f, None), or (None, what is wrong with it: truncated, not UTF-8, not an object,
    unreadable). Readers decide what a bad file means: skipped with a warning, or an error."""
    try:
        data = json.loads(f.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as e:
        return None, f"not valid JSON ({e})"
    except RecursionError:
        return None, "JSON nested too deeply"
    except OSError as e:
        return None, f"unreadable ({e.strerror or e})"
    if not isinstance(data, dict):
        return None, f"a JSON {type(data).__name__}, not an object"
    return data, None


def read_json_or_warn(f: Path, what: str) -> Optional[dict]:
    """The JSON object in file f, or None after one warning line on stderr naming the file: one corrupt file must not
    stop the commands that read them all."""
    data, problem = read_json_object(f)
    if problem is not None:
        print(f"warning: skipped {f}: {what} that is {problem}; delete or move it away", file=sys.stderr, flush=True)
    return data


def checkpoint_complete(ckpt: Path) -> bool:
    """A Trainer checkpoint folder is complete once its trainer_state.json, which the Trainer writes last, reads as
    JSON; a missing or truncated one means the save was cut off (kill -9, disk full)."""
    try:
        json.loads((Path(ckpt) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def newest_complete_checkpoint(output_dir: Path) -> Optional[Path]:
    """The newest complete checkpoint-N folder of a stage (what a resumed run continues from), or None."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    for ckpt in sorted(found, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        if checkpoint_complete(ckpt):
            return ckpt
    return None


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()[:12]
