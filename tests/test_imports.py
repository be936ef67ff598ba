"""The shape of the code: no import circle anywhere in agent/ and tui/ (imports inside functions count
too), the core imports no scenario kind (the default plugins reach it through the hooks), and the packages
are layers: text, then models, then plugin, then reply and learn; the front ends on top. The command line
starts the chat app and the server (`agent chat`, `agent serve`); no other front end imports another."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO


def module_name(path: Path) -> str:
    """agent/scenarios/faq.py -> agent.scenarios.faq (a package's __init__ is the package)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports, wherever the import statement is."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's own __init__ aside)."""
    files = [p for folder in ("agent", "tui") for p in (REPO / folder).rglob("*.py")]
    known = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, known) - {module_name(p)} for p in files}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_agent_and_tui() -> None:
    edges = graph()
    assert len(edges) > 60 and "agent.scenarios.recommend.plugin" in edges
    assert cycles(edges) == []


def test_the_core_imports_no_scenario_and_the_app_no_command_module() -> None:
    edges = graph()
    core = [m for m in edges if not m.startswith("agent.scenarios") and m not in ("agent.cli.manage", "agent.cli.finetune",
                                                                                   "agent.cli.replay")]
    assert [(m, sorted(i for i in edges[m] if i.startswith("agent.scenarios"))) for m in core
            if any(i.startswith("agent.scenarios") for i in edges[m])] == []
    assert not [m for m in edges if m.startswith("tui") and any(i.startswith("agent.cli.main") for i in edges[m])]


def test_the_checker_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


CLI_COMMANDS = tuple(sorted(f"agent.cli.{p.stem}" for p in (REPO / "agent" / "cli").glob("*.py") if p.stem not in ("__init__", "util")))
RULES = (  # (importer prefix, imported prefixes it must not reach, why)
    ("agent.reply.", ("agent.learn.",), "answering never imports learning"),
    ("agent.models.", ("agent.reply.", "agent.learn.", "agent.plugin.", "agent.store"), "models know no reply, learning, plugin or log"),
    ("agent.text.", ("agent.models.", "agent.plugin.", "agent.reply.", "agent.learn.", "agent.review.", "agent.store",
                     "agent.scenarios.", "agent.replay.", "agent.serve.", "agent.cli.", "agent.settings", "agent.memory"),
     "text imports no other package of the agent"),
    ("tui.", ("agent.cli.",), "the screen does not import the command line"),
    ("agent.serve.", ("agent.cli.", "tui."), "the HTTP front end imports no other front end"),
    ("agent.outlets.", ("agent.scenarios.", "agent.reply.", "agent.learn.", "agent.serve.", "tui.", *CLI_COMMANDS),
     "outlets import no scenario, answering, learning or front end (the command line's helpers in agent.cli.util aside)"),
)


def broken_rules(edges: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """(importer, imported, rule) for every import that crosses a layer the wrong way."""
    return [(m, i, why) for m, imported in sorted(edges.items()) for prefix, banned, why in RULES
            if (m + ".").startswith(prefix) for i in sorted(imported) if any((i + ".").startswith(b) or i == b for b in banned)]


def test_the_layers_hold() -> None:
    edges = graph()
    assert {"agent.reply.agent", "agent.learn.finetune", "agent.models.encoder", "agent.text.guard"} <= set(edges)
    assert broken_rules(edges) == []


def test_the_layer_check_finds_a_crossing() -> None:
    edges = {"agent.reply.agent": {"agent.learn.finetune"}, "agent.models.finetuned": {"agent.store"},
             "agent.text.guard": {"agent.errors"}, "tui.widgets": {"agent.cli.main"}}
    assert [(m, i) for m, i, _ in broken_rules(edges)] == [
        ("agent.models.finetuned", "agent.store"), ("agent.reply.agent", "agent.learn.finetune"), ("tui.widgets", "agent.cli.main")]


def test_outlets_may_use_the_command_lines_helpers_and_nothing_above_them() -> None:
    edges = {"agent.outlets.cli": {"agent.cli.util", "agent.store"}, "agent.outlets.publish": {"agent.scenarios.monitor.run"},
             "agent.outlets.deliverer": {"agent.cli.main", "agent.serve.app"}}
    assert "agent.cli.main" in CLI_COMMANDS and "agent.cli.util" not in CLI_COMMANDS
    assert [(m, i) for m, i, _ in broken_rules(edges)] == [
        ("agent.outlets.deliverer", "agent.cli.main"), ("agent.outlets.deliverer", "agent.serve.app"),
        ("agent.outlets.publish", "agent.scenarios.monitor.run")]
