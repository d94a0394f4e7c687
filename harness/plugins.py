"""User plugins: Python code from outside the repository that registers verifiers, generators, methods (or engines).

A plugin is an ordinary module that registers what it defines when it is imported:

    from harness.verifiers import VERIFIERS, BaseVerifier, Verdict

    @VERIFIERS.register("my_rule")
    class MyRule(BaseVerifier): ...

(generators: `GENERATORS.register("name")(fn)` from harness.generators; methods: `register(Method(...))` from
harness.methods). Importing the module is all that loading does; there is no other hook to define. A task YAML then
names the verifier or generator as it names a built-in, and `harness run --method NAME` a method.

Three ways to load plugins, all of them in every command that reads tasks:

1. `--plugin MODULE_OR_FILE` (repeatable);
2. `$HARNESS_PLUGINS`: MODULE_OR_FILE entries separated by os.pathsep (":" on Linux and macOS);
3. installed packages' entry points in the group `harness.plugins`, whose value names the module, e.g. in the
   package's pyproject.toml: `[project.entry-points."harness.plugins"] my_rules = "my_pkg.harness_plugin"`.

MODULE_OR_FILE is a module name (`my_pkg.plugin`, imported as usual: it must be on sys.path) or the path of a .py
file (a spec that ends in .py or holds a path separator). A file is imported under a module name of its own, with its
folder put first on sys.path so that it can import the modules beside it.

Each plugin is loaded once per process: naming it again (on the command line and in $HARNESS_PLUGINS, or twice) does
nothing. Anything that goes wrong (no such module or file, a syntax error, an exception while importing, a name that
a built-in or another plugin has registered already) is one HarnessError naming the plugin, the problem and the fix.
Run records list the loaded plugins under provenance.plugins: module, file and the file's sha256.

This module imports nothing heavy: `harness --help` and the task commands must stay free of torch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Optional

from harness.errors import HarnessError
from harness.registry import AlreadyRegistered

ENV_VAR = "HARNESS_PLUGINS"
GROUP = "harness.plugins"
FROM_CLI, FROM_ENV, FROM_ENTRY_POINT = "--plugin", f"${ENV_VAR}", "entry point"
_MODULE_NAME = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*")


@dataclass(frozen=True)
class Plugin:
    """One loaded plugin, as a run record's provenance shows it."""

    spec: str  # as given: the --plugin value, the $HARNESS_PLUGINS entry, or the entry point `name = value`
    source: str  # FROM_CLI, FROM_ENV or FROM_ENTRY_POINT
    module: str  # its name in sys.modules
    file: Optional[str] = None  # the file that was imported (a package: its __init__.py)
    sha256: Optional[str] = None  # of that file
    distribution: Optional[str] = None  # entry points: the installed package that declares it, "name version"

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


_LOADED: dict[str, Plugin] = {}  # identity ("file:<path>" or "module:<name>") -> the plugin, in load order


def load_plugins(specs: Iterable[str] = ()) -> list[Plugin]:
    """Load the plugins named by `specs` (--plugin values), by $HARNESS_PLUGINS and by installed entry points, each
    once per process; return them all in that order. Raises HarnessError on the first one that fails."""
    _import_builtins()
    found = [_load_spec(s, FROM_CLI) for s in specs]
    found += [_load_spec(s, FROM_ENV) for s in env_specs()]
    found += [_load_entry_point(ep) for ep in importlib.metadata.entry_points(group=GROUP)]
    return list(dict.fromkeys(found))


def env_specs() -> list[str]:
    return [s.strip() for s in os.environ.get(ENV_VAR, "").split(os.pathsep) if s.strip()]


def loaded() -> list[Plugin]:
    """Every plugin loaded in this process, in load order."""
    return list(_LOADED.values())


def provenance() -> list[dict]:
    """What a run record keeps of the loaded plugins (empty: none loaded)."""
    return [p.record() for p in loaded()]


def child_specs(plugins: Iterable[Plugin]) -> list[str]:
    """The --plugin values that load `plugins` in a child `harness` command started elsewhere (another folder, a
    cluster node): files by absolute path, modules by name. Entry points load there by themselves."""
    return [p.file or p.spec if _is_file_spec(p.spec) else p.spec for p in plugins if p.source != FROM_ENTRY_POINT]


# ------------------------------------------------------------------------------------------------ loading


def _import_builtins() -> None:
    """The built-ins register first, so a plugin that reuses a built-in name is the one that fails, with a message,
    and not a later import of the built-ins."""
    for registering in ("harness.engines", "harness.generators", "harness.verifiers"):
        importlib.import_module(registering)


def _is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def _load_spec(spec: str, source: str) -> Plugin:
    if _is_file_spec(spec):
        return _load_file(spec, source)
    return _load_module(spec, source)


def _load_file(spec: str, source: str) -> Plugin:
    path = Path(spec).expanduser().resolve()
    same = next((p for p in _LOADED.values() if p.file == str(path)), None)
    if same is not None:
        return same
    if path.is_dir():
        raise HarnessError(
            f"plugin {spec} (from {source}) is a folder; pass the .py file that registers, or the "
            "package by module name with its parent folder on PYTHONPATH"
        )
    if not path.is_file():
        raise HarnessError(
            f"plugin file {spec} (from {source}) does not exist; check the path (a plugin is a module "
            "name or the path of a .py file)"
        )
    if path.suffix != ".py":
        raise HarnessError(
            f"plugin {spec} (from {source}) is not a .py file; pass a Python source file or a module name"
        )
    stem = re.sub(r"\W", "_", path.stem)
    name = f"harness_plugin_{stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"  # two plugin.py never clash
    module = _guarded(spec, source, name, path, lambda: _exec_file(name, path))
    return _remember(f"file:{path}", Plugin(spec, source, module.__name__, str(path), _sha256(path)))


def _exec_file(name: str, path: Path) -> ModuleType:
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # its siblings are importable, as beside a script
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py path always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a failed plugin leaves no half-imported module behind
        raise
    return module


def _load_module(spec: str, source: str) -> Plugin:
    if f"module:{spec}" in _LOADED:
        return _LOADED[f"module:{spec}"]
    if not _MODULE_NAME.fullmatch(spec):
        raise HarnessError(
            f"plugin '{spec}' (from {source}) is neither a module name (like my_pkg.plugin) nor the "
            "path of a .py file; fix the spelling"
        )
    module = _guarded(spec, source, spec, None, lambda: importlib.import_module(spec))
    return _remember(f"module:{spec}", _describe(spec, source, module))


def _load_entry_point(ep: Any) -> Plugin:
    key = f"module:{ep.module}"
    if key in _LOADED:
        return _LOADED[key]
    dist = getattr(ep, "dist", None)
    distribution = f"{dist.name} {dist.version}" if dist is not None else None
    label = f"{ep.name} = {ep.value}"
    _guarded(label, FROM_ENTRY_POINT, ep.module, None, ep.load, distribution)
    plugin = _describe(label, FROM_ENTRY_POINT, sys.modules[ep.module], distribution)
    return _remember(key, plugin)


def _describe(spec: str, source: str, module: ModuleType, distribution: Optional[str] = None) -> Plugin:
    file = getattr(module, "__file__", None)
    path = Path(file).resolve() if file else None
    return Plugin(
        spec,
        source,
        module.__name__,
        str(path) if path else None,
        _sha256(path) if path and path.is_file() else None,
        distribution,
    )


def _remember(key: str, plugin: Plugin) -> Plugin:
    _LOADED[key] = plugin
    return plugin


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ errors


def _guarded(
    spec: str, source: str, module: str, path: Optional[Path], load: Any, distribution: Optional[str] = None
) -> ModuleType:
    """Run `load` (the import); any failure becomes one HarnessError that names the plugin and the fix."""
    try:
        return load()
    except Exception as e:
        raise _failure(e, spec, source, module, path, distribution) from None


def _failure(
    e: Exception, spec: str, source: str, module: str, path: Optional[Path], distribution: Optional[str]
) -> HarnessError:
    where = f"plugin '{spec}' (from {source})"
    fix = _fix(spec, source, distribution)
    if isinstance(e, AlreadyRegistered):
        return HarnessError(
            f"{where} registers {e.kind} '{e.name}', which {_owner(e.existing, module)} already "
            f"registered; give it another name in the plugin (names are shared by the built-ins and "
            f"every plugin), or {fix}"
        )
    if isinstance(e, ModuleNotFoundError) and e.name:
        if source != FROM_ENTRY_POINT and (spec == e.name or spec.startswith(e.name + ".")):
            return HarnessError(
                f"{where} cannot be imported: there is no module named '{e.name}'; install the "
                "package that provides it, add its folder to PYTHONPATH, or pass the path of its .py "
                "file"
            )
        return HarnessError(
            f"{where} needs the module '{e.name}', which is not installed (at {_location(e, path)}); "
            f"install it in this environment, or {fix}"
        )
    if isinstance(e, SyntaxError):
        return HarnessError(f"{where} has a syntax error at {e.filename}:{e.lineno}: {e.msg}; fix the plugin, or {fix}")
    return HarnessError(
        f"{where} failed while loading: {type(e).__name__}: {e} (at {_location(e, path)}); fix the plugin, or {fix}"
    )


def _fix(spec: str, source: str, distribution: Optional[str]) -> str:
    if source == FROM_CLI:
        return f"drop --plugin {spec}"
    if source == FROM_ENV:
        return f"remove it from ${ENV_VAR}"
    return f"uninstall {distribution.split()[0] if distribution else 'the package that declares it'}"


def _owner(obj: object, loading: str) -> str:
    """Who registered `obj`: a built-in, a loaded plugin, or a module."""
    module = getattr(obj, "origin", None) or getattr(obj, "__module__", None) or "?"  # a Method: its module
    if module == loading:
        return "this plugin itself (it registers the name twice)"
    plugin = next((p for p in _LOADED.values() if p.module == module), None)
    if plugin is not None:
        return f"plugin '{plugin.spec}' (from {plugin.source})"
    if module == "harness" or module.startswith("harness."):
        return f"the harness ({module}, a built-in)"
    return f"module {module}"


def _location(e: Exception, path: Optional[Path]) -> str:
    """file:line where the plugin failed: its own deepest frame when it is a file, else the deepest frame outside
    the import machinery."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith("<frozen")]
    mine = [f for f in frames if path is not None and Path(f.filename) == path]
    frame = (mine or frames or [None])[-1]
    return f"{frame.filename}:{frame.lineno}" if frame is not None else "unknown place"
