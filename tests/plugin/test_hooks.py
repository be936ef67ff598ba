"""Plugin hooks: each hook works, a failing hook is reported and the rest keeps working, and every hook
is documented in docs/plugins.md and tested (the meta-test)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from agent.cli import (
    manage,  # noqa: F401  (register the built-in commands)
)
from agent.cli.main import cli
from agent.models.encoder import Encoder
from agent.plugin.hookspecs import hook_names
from agent.reply.agent import Agent
from agent.scenarios.recommend.events import item_feedback
from agent.settings import Settings
from conftest import REPO, make_plugin

BUILD_REPLY = '''
from agent import hookimpl

@hookimpl
def build_reply(label, answer, fallback_reason):
    return None if fallback_reason else f"[{label}] {answer}"
'''

OBSERVE = '''
from agent import hookimpl

@hookimpl
def observe_turn(plugin, text, reply):
    return {"words": len(text.split()), "answered_by": reply.plugin, "me": plugin}
'''

RAISES = '''
from agent import hookimpl

@hookimpl
def build_reply(answer):
    raise RuntimeError("boom")

@hookimpl
def observe_turn(text):
    return {}["missing"]
'''


def two_plugins(tmp_path: Path, hooks_a: str, hooks_b: str | None = None) -> Settings:
    """Plugins `a` (with hooks_a) and `b` (with hooks_b, if any) in one plugin folder."""
    root = tmp_path / "plugins"
    (make_plugin(root, "a") / "hooks.py").write_text(hooks_a)
    b = make_plugin(root, "b", "Another help desk")
    if hooks_b:
        (b / "hooks.py").write_text(hooks_b)
    return Settings(home=tmp_path / "home", plugin_paths=[root])


def test_hook_build_reply_changes_only_its_own_plugins_replies(tmp_path: Path, encoder: Encoder) -> None:
    agent = Agent(two_plugins(tmp_path, BUILD_REPLY), encoder=encoder)
    mine = agent.reply("I lost my card", plugin="a")
    other = agent.reply("I lost my card", plugin="b")
    assert mine.text.startswith("[card_lost] ") and mine.text[len("[card_lost] "):] == other.text
    stored = agent.store.turn(mine.turn_id)["reply"]  # a hook's reply may echo the message, so it is redacted
    assert stored == mine.text.replace("0800 000 000", "<PHONE>") if "0800" in mine.text else stored == mine.text
    assert agent.hooks.implemented("a") == ["build_reply"] and agent.hooks.implemented("b") == []


def test_hook_observe_turn_sees_every_turn_and_is_stored(tmp_path: Path, encoder: Encoder) -> None:
    agent = Agent(two_plugins(tmp_path, OBSERVE), encoder=encoder)
    reply = agent.reply("when are you open on sunday", plugin="b")
    assert reply.annotations["a"] == {"words": 6, "answered_by": "b", "me": "a"}
    assert agent.store.turn(reply.turn_id)["annotations"] == {"a": {"words": 6, "answered_by": "b", "me": "a"}}


def test_hook_observe_turn_results_are_redacted_before_they_are_stored(tmp_path: Path, encoder: Encoder) -> None:
    leaky = "from agent import hookimpl\n\n@hookimpl\ndef observe_turn(text):\n" \
            "    return {'card': 4111111111111111, 'echo': text, 'n': 3, 'ok': True}\n"
    agent = Agent(two_plugins(tmp_path, leaky), encoder=encoder)
    reply = agent.reply("my card 4111 1111 1111 1111 was stolen", plugin="b")
    stored = agent.store.turn(reply.turn_id)["annotations"]["a"]
    assert stored == {"card": "<CARD>", "echo": "my card <CARD> was stolen", "n": 3, "ok": True}


def test_hook_cli_commands_adds_a_command(tmp_path: Path) -> None:
    hooks = '''
import click
from agent import hookimpl

@hookimpl
def cli_commands():
    @click.command("shop-hello")
    @click.argument("who")
    def hello(who):
        """Greet someone from the shop plugin."""
        click.echo(f"hello {who} from the shop")

    @click.command("plugins")
    def clash():
        """Tries to take a built-in name."""

    return [hello, clash, "not a command"]
'''
    (make_plugin(tmp_path / "plugins", "shop") / "hooks.py").write_text(hooks)
    env = {"AGENT_PLUGINS_PATH": str(tmp_path / "plugins")}
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(tmp_path / "home"), "shop-hello", "Ann"], env=env)
    assert result.exit_code == 0, result.output
    assert "hello Ann from the shop" in result.output
    listing = runner.invoke(cli, ["--home", str(tmp_path / "home"), "--help"], env=env)
    assert "shop-hello" in listing.output
    assert "command 'plugins' is already taken" in listing.output and "not a named click command" in listing.output
    assert runner.invoke(cli, ["--home", str(tmp_path / "home"), "plugins", "--json"], env=env).exit_code == 0


def test_hook_tui_panels_mounts_in_a_textual_app(tmp_path: Path) -> None:
    import asyncio

    from textual.app import App, ComposeResult

    hooks = '''
from textual.widgets import Static
from agent import hookimpl

class OrdersPanel(Static):
    def on_mount(self):
        self.update("3 orders late")

@hookimpl
def tui_panels():
    return [OrdersPanel]
'''
    (make_plugin(tmp_path / "plugins", "shop") / "hooks.py").write_text(hooks)
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"]))
    [(plugin, panels)] = agent.hooks.call_each("tui_panels")

    class Host(App):
        def compose(self) -> ComposeResult:
            yield from (panel() for panel in panels)

    async def run() -> str:
        app = Host()
        async with app.run_test() as pilot:
            await pilot.pause()
            return str(app.query_one(panels[0]).render())

    assert plugin == "shop" and asyncio.run(run()) == "3 orders late"


def test_hook_that_raises_is_reported_and_the_others_keep_working(tmp_path: Path, encoder: Encoder) -> None:
    notes: list[str] = []
    agent = Agent(two_plugins(tmp_path, RAISES, OBSERVE.replace('"me": plugin', '"me": "b"')), encoder=encoder,
                  notify=notes.append)
    reply = agent.reply("I want my money back", plugin="a")
    assert reply.label == "refund" and reply.text.startswith("Refunds")  # the default answer
    assert any("plugin a: hook build_reply failed: RuntimeError: boom" in w for w in reply.warnings)
    assert any("plugin a: hook observe_turn failed: KeyError" in w for w in reply.warnings)
    assert reply.annotations == {"b": {"words": 5, "answered_by": "a", "me": "b"}}  # b's hook still ran
    assert any("boom" in n for n in notes) and agent.store.turn(reply.turn_id)["reply"] == reply.text
    warnings = agent.reply("when are you open", plugin="b").warnings  # a's build_reply is not called for b's turns
    assert len(warnings) == 1 and "plugin a: hook observe_turn failed" in warnings[0]


def test_broken_hooks_file_skips_only_that_plugin(tmp_path: Path, encoder: Encoder) -> None:
    settings = two_plugins(tmp_path, "from agent import hookimpl\n\n@hookimpl\ndef build_reply(:\n")
    agent = Agent(settings, encoder=encoder)
    [skip] = agent.skipped
    assert skip.name == "a" and re.search(r"hooks\.py:4: importing it failed: SyntaxError", skip.reason)
    assert agent.reply("I lost my card").plugin == "b"


def test_unknown_hook_or_argument_is_refused_with_the_file(tmp_path: Path, encoder: Encoder) -> None:
    typo = "from agent import hookimpl\n\n@hookimpl\ndef build_replies(answer):\n    return answer\n"
    agent = Agent(two_plugins(tmp_path, typo), encoder=encoder)
    assert "unknown hook(s) ['build_replies']" in agent.skipped[0].reason and "hooks.py" in agent.skipped[0].reason
    bad_arg = "from agent import hookimpl\n\n@hookimpl\ndef build_reply(answer, mood):\n    return answer\n"
    (tmp_path / "plugins" / "a" / "hooks.py").write_text(bad_arg)
    agent = Agent(Settings(home=tmp_path / "home2", plugin_paths=[tmp_path / "plugins"]), encoder=encoder)
    assert "mood" in agent.skipped[0].reason and [m.name for m in agent.manifests] == ["b"]


def test_every_hook_is_documented_and_tested() -> None:
    readme = (REPO / "docs" / "plugins.md").read_text()
    section = readme[readme.index("## Plugin hooks"):]
    section = section[: section.find("\n## ", 4)]
    tests = "\n".join(p.read_text() for p in sorted(Path(__file__).resolve().parents[1].rglob("test_*.py")))
    assert "build_reply" in hook_names() and "register_tables" in hook_names()  # pluggy's own list of the specs
    for hook in hook_names():
        assert f"| `{hook}`" in section, f"hook {hook} is missing from the hook table of docs/plugins.md"
        assert f"def test_hook_{hook}_" in tests, f"hook {hook} has no test_hook_{hook}_... test"


ODD_ITEMS = '''
from agent import hookimpl

@hookimpl
def build_reply(text):
    if "list" in text:
        return {"text": "Two picks.", "items": [{"id": 0, "title": "Saver for Ann Smith, ann@example.com",
                                                  "score": float("nan")}, {"id": "card", "reason": "no fees", "score": "0.5"}]}
    if "scalar" in text:
        return {"items": 5}
    return {"reply": "typo"}
'''


def test_build_reply_items_odd_results_never_fail_the_turn(tmp_path: Path, encoder: Encoder) -> None:
    agent = Agent(two_plugins(tmp_path, ODD_ITEMS), encoder=encoder)
    picks = agent.reply("list me some savings accounts", plugin="a")
    assert picks.text == "Two picks." and [i["id"] for i in picks.extra("items")] == ["0", "card"]
    assert picks.extra("items")[0]["score"] is None and picks.extra("items")[1] == {"id": "card", "title": "card", "reason": "no fees", "score": 0.5}
    stored = agent.store.turn(picks.turn_id)["extras"]["a"]["items"]
    assert "ann@example.com" not in str(stored) and stored[0]["id"] == "0"  # titles are redacted like replies; ids kept
    scalar = agent.reply("a scalar please", plugin="a")
    assert scalar.extra("items") == [] and scalar.label and scalar.text  # the default answer is kept
    assert any("'items' must be a list of dicts, not int" in w for w in scalar.warnings)
    typo = agent.reply("I lost my card", plugin="a")
    assert typo.label == "card_lost" and typo.extra("items") == []
    assert any("unknown keys ['reply']; use 'text', 'extras' or ['items']" in w for w in typo.warnings)
    assert item_feedback(agent, picks.turn_id, "0", "like") > 0
