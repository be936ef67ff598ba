"""Where things live: the home folder, the database, the indexes, the plugin folders."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def bundled_root() -> Path:
    """The bundled plugins: agent/bundled/ in an installed wheel, plugins/ in a checkout."""
    installed = Path(__file__).resolve().parent / "bundled"
    return installed if installed.is_dir() else PACKAGE_ROOT / "plugins"


def default_home() -> Path:
    """AGENT_HOME, else the project checkout (when run from one), else ~/.agent."""
    if os.environ.get("AGENT_HOME"):
        return Path(os.environ["AGENT_HOME"]).expanduser()
    if (PACKAGE_ROOT / "plugins").is_dir() and (PACKAGE_ROOT / "pyproject.toml").is_file():
        return PACKAGE_ROOT
    return Path.home() / ".agent"


def plugin_dirs_from_env() -> list[Path]:
    """Folders named in AGENT_PLUGINS_PATH (os.pathsep-separated)."""
    raw = os.environ.get("AGENT_PLUGINS_PATH", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


@dataclass
class Settings:
    """Paths and limits for one agent; tests pass a temporary home."""

    home: Path = field(default_factory=default_home)
    plugin_paths: list[Path] | None = None
    max_chars: int = field(default_factory=lambda: int(os.environ.get("AGENT_MAX_CHARS", "5000")))

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().resolve()

    @property
    def db_path(self) -> Path:
        """The SQLite log."""
        return self.home / "agent.db"

    @property
    def index_root(self) -> Path:
        """Built FAISS indexes and cached heads, one folder per plugin."""
        return self.home / "indexes"

    @property
    def models_root(self) -> Path:
        """Fine-tuned model versions, one folder per plugin (HOME/models/NAME/)."""
        return self.home / "models"

    def search_paths(self) -> list[Path]:
        """Folders that hold plugin folders, in priority order, without duplicates."""
        if self.plugin_paths is not None:  # explicit paths (tests, embedding) replace the defaults
            paths = [*self.plugin_paths, self.home / "plugins"]
        else:
            paths = [*plugin_dirs_from_env(), self.home / "plugins", bundled_root()]
        seen: list[Path] = []
        for p in (Path(x).resolve() for x in paths):
            if p not in seen and p.is_dir():
                seen.append(p)
        return seen
