"""A new kind of scenario as one plugin folder: its own manifest table, database table (a migration),
answers that read the turn's embedding, reply extras, feedback options, chat commands, an observer
step and a fine-tuner, all through the hookspecs the default plugins use; no core file knows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.errors import PluginError
from agent.models.encoder import Encoder
from agent.plugin import contributions
from agent.plugin.manager import plugin_manager
from agent.reply.agent import Agent
from agent.settings import Settings
from conftest import make_plugin

DESK_HOOKS = '''
import click
from agent import hookimpl
from agent.learn.finetune import FinetuneResult

@hookimpl
def register_tables(register):
    def parse(table, manifest):
        t = table.sub("desk", {"queue", "urgent"})
        if t is None:
            return None
        queue = t.get("queue", str, expected="a queue name")
        urgent = t.get("urgent", list, [], "a list of words")
        if not all(isinstance(w, str) for w in urgent):
            raise t.fail("urgent", "a list of words", urgent)
        return {"queue": queue, "urgent": urgent}
    register("desk", parse)

def m001_tickets(db):
    db["desk_tickets"].create({"id": int, "turn_text": str, "queue": str, "dims": int, "user_id": str}, pk="id")

@hookimpl
def register_migrations(register):
    register("desk", m001_tickets)

@hookimpl
def open_plugin(plugin, manifest):
    return {"opened": plugin} if manifest.tables.get("desk") else None

@hookimpl
def respond(turn):
    config = turn.manifest.tables.get("desk")
    if config is None or turn.fallback_reason:
        return None
    [ticket] = turn.store.insert("desk_tickets", [{"turn_text": turn.text, "queue": config["queue"],
                                                    "dims": int(turn.embedding.shape[0]), "user_id": turn.user}], ids=True)
    urgent = any(w in turn.text.lower() for w in config["urgent"])
    state = next(s for s in turn.state.values() if isinstance(s, dict) and "opened" in s)
    return {"text": f"Ticket {ticket} is open in the {config['queue']} queue.",
            "extras": {"ticket": ticket, "urgent": urgent, "opened_by": state["opened"]}}

@hookimpl
def intercept(turn):
    if turn.plugin != "desk" or "on hold" not in turn.text:
        return None
    return {"text": "The desk holds this conversation.", "extras": {"desk_hold": {"label_seen": turn.label}}}

@hookimpl
def describe_turn(turn, store):
    if turn["plugin"] != "desk" or not store.db["desk_tickets"].exists():
        return None
    return {"tickets": [r["id"] for r in store.query("SELECT id FROM desk_tickets WHERE turn_text = ?", [turn["text"]])]}

@hookimpl
def format_extras(plugin, extras):
    if "ticket" not in extras:
        return None
    return [f"ticket #{extras['ticket']}" + (" (urgent)" if extras["urgent"] else "")]

@hookimpl
def observe(turns, plugin, runtime):
    if runtime.manifest.tables.get("desk") is None:
        return
    for turn in turns:
        turn.reply.annotations[plugin]["seen_by_desk"] = True

@hookimpl
def register_feedback(register):
    def close(agent, turn_id, value):
        agent.store.insert("desk_tickets", [{"turn_text": f"closed {turn_id}: {value}", "queue": "closed"}])
        return f"closed the ticket of turn {turn_id}"
    register("close", "Close the ticket a turn opened.", close)

@hookimpl
def register_chat_commands(register):
    register("/tickets", "count the open tickets", lambda app, arg: app.say(f"tickets: {arg or 'all'}"))

@hookimpl
def register_reply_keys(register):
    register("priority", lambda value: (int(value), [] if int(value) < 5 else ["priority above 4 was capped"]))

@hookimpl
def register_commands(cli):
    @cli.command("tickets")
    @click.pass_context
    def tickets(ctx):
        """The desk's open tickets."""
        from agent.cli.util import make_agent
        for row in make_agent(ctx).store.query("SELECT id, queue, turn_text FROM desk_tickets ORDER BY id"):
            click.echo(f"{row['id']} {row['queue']} {row['turn_text']}")

@hookimpl
def register_finetuners(register):
    def tune(job):
        version, partial = job.versions.start()
        (partial / "note.txt").write_text(str(len(job.store.query("SELECT id FROM desk_tickets"))))
        job.versions.finish(version, partial)
        job.versions.promote(version)
        return FinetuneResult(job.manifest.name, version, "promoted", {"mode": "desk"}, {"lines": ["desk tuned"]},
                              job.versions.path(version))
    register("desk", tune, folder="desk")
'''
DESK_TABLE = '\n[desk]\nqueue = "support"\nurgent = ["asap", "now"]\n'
OBSERVER = '''
name = "watcher"
description = "Labels every turn"
role = "observer"
labels = ["card_lost", "opening_hours", "refund"]

[data]
examples = "examples.csv"

[desk]
queue = "watch"
'''


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Settings]:
    """A plugin folder `desk` of the new kind (with its hooks.py), an observer using its table, and `shop`."""
    root = tmp_path / "plugins"
    folder = make_plugin(root, "desk")
    (folder / "plugin.toml").write_text((folder / "plugin.toml").read_text() + DESK_TABLE)
    (folder / "hooks.py").write_text(DESK_HOOKS)
    make_plugin(root, "shop")
    watcher = make_plugin(root, "watcher")
    (watcher / "plugin.toml").write_text(OBSERVER)
    yield Settings(home=tmp_path / "home", plugin_paths=[root])
    pm = plugin_manager()
    for name in ("plugin:desk", "plugin:shop"):  # the kinds leave with their folders
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)


def test_hook_register_tables_parses_the_kinds_own_table(desk: Settings, encoder: Encoder) -> None:
    agent = Agent(desk, encoder=encoder)
    manifests = {m.name: m for m in agent.manifests}
    assert manifests["desk"].tables["desk"] == {"queue": "support", "urgent": ["asap", "now"]}
    assert manifests["shop"].tables["desk"] is None and manifests["watcher"].tables["desk"] == {"queue": "watch", "urgent": []}
    assert "desk" in contributions.tables() and "recommend" in contributions.tables()


def test_a_bad_value_in_the_kinds_table_names_the_file_and_key(desk: Settings, encoder: Encoder) -> None:
    Agent(desk, encoder=encoder)  # the kind is registered
    bad = desk.plugin_paths[0] / "watcher" / "plugin.toml"  # type: ignore[index]
    bad.write_text(OBSERVER.replace('queue = "watch"', 'queue = "watch"\nurgent = [1, 2]'))
    from agent.plugin.manifest import load_manifest

    with pytest.raises(PluginError, match=r"watcher/plugin.toml: key 'desk.urgent' must be a list of words, found \[1, 2\]; fix it"):
        load_manifest(bad)
    typo = OBSERVER.replace('queue = "watch"', 'queue = "watch"\nurgnt = ["x"]')
    bad.write_text(typo)
    with pytest.raises(PluginError, match=r"unknown key 'urgnt' in \[desk\]; did you mean 'urgent'\?"):
        load_manifest(bad)


def test_hook_register_migrations_creates_the_kinds_table(desk: Settings, encoder: Encoder) -> None:
    agent = Agent(desk, encoder=encoder)
    names = [r["name"] for r in agent.store.query("SELECT name FROM _migrations")]
    assert "desk.m001_tickets" in names and agent.store.db["desk_tickets"].exists()


def test_hook_respond_reads_the_embedding_and_writes_its_table(desk: Settings, encoder: Encoder) -> None:
    agent = Agent(desk, encoder=encoder)
    reply = agent.reply("I lost my card, block it asap", plugin="desk", user="ann")
    assert reply.text == "Ticket 1 is open in the support queue." and reply.label == "card_lost"
    assert reply.extras["desk"] == {"ticket": 1, "urgent": True, "opened_by": "desk"}
    [row] = agent.store.query("SELECT * FROM desk_tickets")
    assert row["dims"] == encoder.dim and row["user_id"] == "ann" and row["turn_text"].startswith("I lost my card")
    assert agent.store.turn(reply.turn_id)["extras"]["desk"]["ticket"] == 1  # extras are logged with the turn
    other = agent.reply("I lost my card", plugin="shop")  # a plugin without the table answers as before
    assert other.text.startswith(("Freeze it", "Call us")) and other.extras == {}


def test_hook_intercept_keeps_a_turn_from_every_answer_and_it_is_still_logged(desk: Settings, encoder: Encoder) -> None:
    agent = Agent(desk, encoder=encoder)
    held = agent.reply("I lost my card, put me on hold", plugin="desk")
    assert held.text == "The desk holds this conversation." and held.extras == {"desk_hold": {"label_seen": "card_lost"}}
    assert held.hits == [] and held.choices == [] and held.label == "card_lost"
    assert agent.store.query("SELECT * FROM desk_tickets") == []  # no `respond` ran
    assert agent.store.turn(held.turn_id)["extras"] == {"desk_hold": {"label_seen": "card_lost"}}
    assert agent.reply("I lost my card, put me on hold", plugin="shop").text.startswith(("Freeze it", "Call us"))


def test_hook_describe_turn_adds_the_kinds_rows_to_a_logged_turn(desk: Settings, encoder: Encoder) -> None:
    agent = Agent(desk, encoder=encoder)
    turn = agent.reply("refund please", plugin="desk").turn_id
    other = agent.reply("refund please", plugin="shop").turn_id
    assert agent.store.turn(turn)["tickets"] == [1] and "tickets" not in agent.store.turn(other)
    exported = list(agent.store.export())
    assert {t["plugin"]: t.get("tickets") for t in exported} == {"desk": [1], "shop": None}


def test_hook_open_plugin_keeps_the_kinds_state_on_the_runtime(desk: Settings, encoder: Encoder) -> None:
    agent = Agent(desk, encoder=encoder)
    assert agent.runtimes["desk"].extensions["plugin:desk"] == {"opened": "desk"}
    assert "plugin:desk" not in agent.runtimes["shop"].extensions


def test_hook_observe_adds_to_an_observers_note(desk: Settings, encoder: Encoder) -> None:
    agent = Agent(desk, encoder=encoder)
    reply = agent.reply("when are you open on sunday", plugin="shop")
    assert reply.annotations["watcher"]["seen_by_desk"] is True and reply.annotations["watcher"]["label"] == "opening_hours"


def test_hook_format_extras_shows_them_in_agent_ask(desk: Settings) -> None:
    env = {"AGENT_PLUGINS_PATH": str(desk.plugin_paths[0])}  # type: ignore[index]
    out = CliRunner().invoke(cli, ["--home", str(desk.home), "--device", "cpu", "ask", "-p", "desk", "I lost my card now"], env=env)
    assert out.exit_code == 0, out.output
    assert "Ticket 1 is open in the support queue." in out.output and "ticket #1 (urgent)" in out.output


def test_hook_register_commands_adds_a_command_of_the_kind(desk: Settings) -> None:
    env = {"AGENT_PLUGINS_PATH": str(desk.plugin_paths[0])}  # type: ignore[index]
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(desk.home), "--device", "cpu", "ask", "-p", "desk", "refund please"], env=env).exit_code == 0
    listed = runner.invoke(cli, ["--home", str(desk.home), "tickets"], env=env)
    assert listed.exit_code == 0 and listed.output.strip() == "1 support refund please"


def test_hook_register_feedback_adds_an_option_to_agent_feedback(desk: Settings, encoder: Encoder) -> None:
    agent = Agent(desk, encoder=encoder)
    turn = agent.reply("refund please", plugin="desk").turn_id
    env = {"AGENT_PLUGINS_PATH": str(desk.plugin_paths[0])}  # type: ignore[index]
    out = CliRunner().invoke(cli, ["--home", str(desk.home), "feedback", str(turn), "--close", "done"], env=env)
    assert out.exit_code == 0 and f"closed the ticket of turn {turn}" in out.output
    assert agent.store.query("SELECT queue FROM desk_tickets ORDER BY id")[-1]["queue"] == "closed"
    both = CliRunner().invoke(cli, ["--home", str(desk.home), "feedback", str(turn), "--good", "--close", "x"], env=env)
    assert both.exit_code == 2 and "--close ITEM" in both.output


def test_hook_register_reply_keys_checks_a_build_reply_key(desk: Settings, encoder: Encoder) -> None:
    (desk.plugin_paths[0] / "shop" / "hooks.py").write_text(  # type: ignore[index]
        "from agent import hookimpl\n\n@hookimpl\ndef build_reply(answer):\n    return {'text': answer, 'priority': '7'}\n")
    agent = Agent(desk, encoder=encoder)
    reply = agent.reply("I lost my card", plugin="shop")
    assert reply.extras["shop"] == {"priority": 7} and any("priority above 4 was capped" in w for w in reply.warnings)


def test_hook_register_finetuners_trains_into_the_home(desk: Settings, encoder: Encoder) -> None:
    from agent.learn.finetune import Options, finetune

    agent = Agent(desk, encoder=encoder)
    agent.reply("refund please", plugin="desk")
    folder = desk.plugin_paths[0] / "desk"  # type: ignore[index]
    result = finetune(folder, desk, Options(device="cpu"), encoder=encoder)
    assert result.status == "promoted" and result.folder == desk.home / "models" / "desk" / "desk" / "v1"
    assert (result.folder / "note.txt").read_text() == "1" and not (folder / "model").exists()
    listed = CliRunner().invoke(cli, ["--home", str(desk.home), "finetune", "desk", "--versions", "--json"],
                                env={"AGENT_PLUGINS_PATH": str(folder.parent)})
    assert listed.exit_code == 0 and json.loads(listed.output)[0]["version"] == "v1"  # a name works as the folder does


def test_hook_register_chat_commands_adds_a_slash_command(desk: Settings, encoder: Encoder) -> None:
    import asyncio

    from tui.app import AgentApp
    from tui.session import Session

    Agent(desk, encoder=encoder)  # the kind is registered
    assert "/tickets" in contributions.chat_commands() and "/like" in contributions.chat_commands()

    async def go() -> list[str]:
        app = AgentApp(Session(desk, "cpu", agent=Agent(desk, encoder=encoder)))
        async with app.run_test(size=(80, 24)) as pilot:
            while not app.ready.is_set():
                await pilot.pause(0.1)
            prompt = app.query_one("#prompt")
            prompt.value = "/tickets open"  # type: ignore[attr-defined]
            await pilot.press("enter")
            await pilot.pause(0.3)
            return [str(w.render()) for w in app.query("Note")]

    notes = asyncio.run(go())
    assert any("tickets: open" in n for n in notes)


def test_a_kind_whose_turn_hooks_raise_is_reported_and_the_turn_goes_on(desk: Settings, encoder: Encoder) -> None:
    (desk.plugin_paths[0] / "shop" / "hooks.py").write_text(  # type: ignore[index]
        "from agent import hookimpl\n\n@hookimpl\ndef respond(turn):\n    raise RuntimeError('no desk today')\n\n"
        "@hookimpl\ndef observe(turns):\n    raise KeyError('nothing to see')\n")
    agent = Agent(desk, encoder=encoder)
    reply = agent.reply("I lost my card", plugin="desk")
    assert reply.text == "Ticket 1 is open in the support queue."  # the desk still answers its own turns
    assert any("plugin shop: hook respond failed: RuntimeError: no desk today" in w for w in reply.warnings)
    assert any("plugin shop: hook observe failed: KeyError" in w for w in reply.warnings)


def test_a_kind_hook_of_a_folder_runs_under_the_time_limit(desk: Settings, encoder: Encoder, monkeypatch) -> None:
    (desk.plugin_paths[0] / "shop" / "hooks.py").write_text(  # type: ignore[index]
        "import time\nfrom agent import hookimpl\n\n@hookimpl\ndef respond(turn):\n    time.sleep(5)\n")
    monkeypatch.setenv("AGENT_HOOK_TIMEOUT", "0.3")
    agent = Agent(desk, encoder=encoder)
    reply = agent.reply("I lost my card", plugin="desk")
    assert reply.text == "Ticket 1 is open in the support queue." and reply.timings_ms["respond"] < 2000
    assert any("plugin shop: hook respond failed: timed out after 0.3 s" in w for w in reply.warnings)


def test_the_core_names_no_scenario() -> None:
    """The core's code (comments and docstrings aside) names none of the bundled kinds."""
    import ast
    import io
    import re
    import tokenize

    from conftest import REPO

    core = [p for p in (REPO / "agent").glob("*.py")] + list((REPO / "tui").glob("*.py"))
    hits = []
    for path in core:
        source = path.read_text()
        docstrings = {n.body[0].value.lineno for n in ast.walk(ast.parse(source))
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT or tok.type == tokenize.STRING and tok.start[0] in docstrings:
                continue
            if re.search(r"recommend|monitor|sentiment|topic|interest", tok.string, re.I):
                hits.append(f"{path.name}:{tok.start[0]}: {tok.string[:60]}")
    assert hits == []
