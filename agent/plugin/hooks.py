"""Plugin hooks (pluggy): load each plugin's hooks, call them so that one plugin's failure stays its own."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pluggy

from agent.errors import PluginError
from agent.plugin import hookspecs
from agent.plugin.manifest import Manifest

HOOKS_FILE = "hooks.py"
DEFAULT_TIMEOUT = 2.0  # seconds a hook may take before it is cut off (AGENT_HOOK_TIMEOUT)
IMPORT_TIMEOUT = 10.0  # seconds importing a hooks.py may take


def hook_timeout() -> float:
    """The hook time limit from AGENT_HOOK_TIMEOUT (seconds), else the default."""
    raw = os.environ.get("AGENT_HOOK_TIMEOUT", "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_TIMEOUT
    except ValueError as exc:
        raise PluginError(f"AGENT_HOOK_TIMEOUT={raw!r} is not a number of seconds; set e.g. AGENT_HOOK_TIMEOUT=2") from exc
    if not value > 0:
        raise PluginError(f"AGENT_HOOK_TIMEOUT={raw!r} must be more than 0 seconds")
    return value


class HookTimeout(Exception):
    """A hook ran past its time limit, or an earlier call of the plugin's hooks still has not returned."""


class Runner:
    """One daemon thread that runs a plugin's hook calls, so that a call that hangs can be abandoned.

    A call that does not return within the limit is left running; until it returns, the plugin's
    later calls are refused at once, so a hung plugin costs one thread, never one per turn.
    """

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.busy_since: float | None = None  # set while a call runs
        self._gate = threading.Lock()  # callers from several threads take turns
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], dict[str, Any], threading.Event]] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name=f"hooks-{plugin}", daemon=True).start()

    def _loop(self) -> None:
        """Run jobs one after another for ever (the thread dies with the process)."""
        while True:
            fn, box, done = self._jobs.get()
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                box["error"] = exc
            finally:
                self.busy_since = None
                done.set()

    def call(self, fn: Callable[[], Any], timeout: float) -> Any:
        """fn() on the plugin's thread: its value, its exception, or HookTimeout after `timeout` seconds."""
        with self._gate:
            if self.busy_since is not None:
                raise HookTimeout(f"skipped: an earlier call has been running for {time.monotonic() - self.busy_since:.1f} s "
                                  "and has not returned")
            box: dict[str, Any] = {}
            done = threading.Event()
            self.busy_since = time.monotonic()
            self._jobs.put((fn, box, done))
            if not done.wait(timeout):
                raise HookTimeout(f"timed out after {timeout:g} s and was cut off")
        error = box.get("error")
        if error is not None and not isinstance(error, Exception):  # sys.exit() in a plugin must not end the agent
            raise RuntimeError(f"{type(error).__name__} raised inside the plugin ({error})")
        if error is not None:
            raise error
        return box.get("value")


@dataclass
class HookFailure:
    """A hook that raised: which plugin, which hook, and what it said."""

    plugin: str
    hook: str
    message: str

    def __str__(self) -> str:
        return f"plugin {self.plugin}: hook {self.hook} failed: {self.message}"


class Hooks:
    """One agent's plugins' hooks: registered in the process's one plugin manager, each plugin's own hooks
    called for it alone (its registered implementation, as pluggy's `subset_hook_caller` would pick it), on a
    thread of its own, with failures caught and reported."""

    def __init__(self, notify: Callable[[str], None] | None = None, timeout: float | None = None) -> None:
        self.timeout = timeout if timeout is not None else hook_timeout()
        self._runners: dict[str, Runner] = {}
        self.notify = notify
        self.failures: list[HookFailure] = []  # since the last drain()
        self._impls: dict[tuple[str, str], Any] = {}  # (plugin, hook) -> pluggy HookImpl
        self._order: list[str] = []  # plugins with hooks, in load order

    def register(self, name: str, obj: object, where: str) -> None:
        """Register one plugin's implementations; bad names or arguments raise PluginError naming `where`."""
        from agent.plugin.manager import plugin_manager, register

        known = hookspecs.hook_names()
        unknown = [h for h in dir(obj) if _marked(obj, h) and h not in known]
        if unknown:
            raise PluginError(f"{where}: unknown hook(s) {sorted(unknown)}; a plugin may implement {known}")
        try:
            register(obj, f"plugin:{name}")
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{where}: {exc}; hook arguments must be among those in the hook table in docs/plugins.md") from exc
        except ValueError as exc:
            raise PluginError(f"{where}: {exc}") from exc
        for caller in plugin_manager().get_hookcallers(obj) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is obj:
                    self._impls[(name, caller.name)] = impl
        if name not in self._order:
            self._order.append(name)

    def implemented(self, name: str) -> list[str]:
        """The hooks that plugin `name` implements."""
        return [h for h in hookspecs.hook_names() if (name, h) in self._impls]

    def names(self, hook: str | None = None) -> list[str]:
        """Plugins with hooks registered (those that implement `hook`, when given), in load order."""
        return [name for name in self._order if hook is None or (name, hook) in self._impls]

    def call_one(self, plugin: str, hook: str, /, **kwargs: Any) -> Any:
        """Call `hook` of one plugin on its own thread; None when it does not implement it, or when it
        raised or ran past the time limit (recorded)."""
        impl = self._impls.get((plugin, hook))
        if impl is None:
            return None
        runner = self._runners.get(plugin) or self._runners.setdefault(plugin, Runner(plugin))
        args = [kwargs[arg] for arg in impl.argnames]
        try:
            return runner.call(lambda: impl.function(*args), self.timeout)
        except HookTimeout as exc:
            self._fail(plugin, hook, HookTimeout(f"{exc} (AGENT_HOOK_TIMEOUT sets the limit)"), describe=False)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not end the turn
            self._fail(plugin, hook, exc)
        return None

    def drain(self) -> list[HookFailure]:
        """The failures since the last call, forgotten here (so a long chat does not accumulate them)."""
        failures, self.failures = self.failures, []
        return failures

    def call_each(self, hook: str, /, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call `hook` of every plugin that implements it: (plugin, result) for those that did not raise."""
        out = []
        for name in self.names():
            result = self.call_one(name, hook, **kwargs)
            if result is not None:
                out.append((name, result))
        return out

    def guarded(self, plugin: str, fn: Callable[[], Any]) -> Any:
        """fn() on the plugin's own thread under the time limit (a package's or folder's kind hook)."""
        runner = self._runners.get(plugin) or self._runners.setdefault(plugin, Runner(plugin))
        try:
            return runner.call(fn, self.timeout)
        except HookTimeout as exc:
            raise HookTimeout(f"{exc} (AGENT_HOOK_TIMEOUT sets the limit)") from None

    def report(self, plugin: str, hook: str, exc: BaseException) -> None:
        """Record a kind's turn hook that raised or ran past the time limit."""
        self._fail(plugin.split(":", 1)[-1], hook, exc, describe=not isinstance(exc, HookTimeout))

    def warn(self, plugin: str, hook: str, message: str) -> None:
        """Record a hook result that was only partly usable."""
        self._fail(plugin, hook, ValueError(message), describe=False)

    def _fail(self, plugin: str, hook: str, exc: BaseException, describe: bool = True) -> None:
        """Record and report a hook that raised or timed out."""
        failure = HookFailure(plugin, hook, _describe(exc) if describe else str(exc))
        self.failures.append(failure)
        if self.notify:
            self.notify(str(failure))

    def load(self, manifest: Manifest) -> list[str]:
        """Register a plugin's hooks (its package module, or hooks.py in its folder); return the hooks found."""
        obj = manifest.hooks_object
        where = manifest.source or str(manifest.folder)
        path = manifest.folder / HOOKS_FILE
        if obj is None and path.is_file():
            if not path.resolve().is_relative_to(manifest.folder.resolve()):
                raise PluginError(f"{path} links outside the plugin folder; hooks are loaded only from the plugin's own folder")
            obj, where = import_hooks_file(path, manifest.name), str(path)
        if obj is None:
            return []
        self.register(manifest.name, obj, where)
        manifest.hooks_object = obj
        return self.implemented(manifest.name)


def _marked(obj: object, attr: str) -> bool:
    """Whether `obj.attr` carries the agent's @hookimpl mark."""
    return hasattr(getattr(obj, attr, None), f"{hookspecs.PROJECT}_impl")


def import_hooks_file(path: Path, plugin: str) -> ModuleType:
    """Import a plugin folder's hooks.py as its own module; an error names the file and line."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"agent_plugin_hooks_{plugin.replace('-', '_')}_{digest}"  # one module per hooks file, never shared
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: cannot be imported as Python; rename or remove it")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        Runner(f"import-{plugin}").call(lambda: spec.loader.exec_module(module), IMPORT_TIMEOUT)  # type: ignore[union-attr]
    except HookTimeout as exc:
        sys.modules.pop(name, None)
        raise PluginError(f"{path}: importing it {exc}; remove whatever blocks at import time (loops, network calls)") from exc
    except Exception as exc:  # noqa: BLE001 - any error in user code becomes a clear message
        sys.modules.pop(name, None)
        raise PluginError(f"{path}{_line_in(exc, path)}: importing it failed: {_describe(exc)}; fix the file or remove it") from exc
    return module


def _line_in(exc: BaseException, path: Path) -> str:
    """':LINE' of the deepest frame in `path`, or of a syntax error there."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f":{exc.lineno}"
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f":{lines[-1]}" if lines else ""


def _describe(exc: BaseException) -> str:
    """'TypeName: message' with the deepest frame's place, for a one-line report."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
