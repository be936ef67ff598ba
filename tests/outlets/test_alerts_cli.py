"""`agent alerts` through click's CliRunner on a temporary home, and outlets declared in a plugin's plugin.toml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from receiver import Receiver

from agent.cli.main import cli
from agent.errors import PluginError
from agent.outlets import publish
from agent.plugin.manifest import load_manifest
from agent.store import Store
from conftest import make_plugin

DECLARED = '''
[[outlets]]
url = "{url}"
secret_env = "SHOP_HOOK_SECRET"

[[outlets]]
command = "notify-ops"
format = "slack"
'''


@pytest.fixture
def env(tmp_path: Path, plugin_root: Path) -> dict[str, str]:
    """A home over the tiny `shop` plugin, and a short retry policy for `agent alerts retry`."""
    return {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(plugin_root), "AGENT_LOAD_PLUGINS": "shop",
            "AGENT_DELIVERY_BASE": "0.01", "AGENT_DELIVERY_TRIES": "2"}


def run(env: dict[str, str], *args: str) -> "object":
    """Invoke `agent ARGS` with the home."""
    return CliRunner().invoke(cli, list(args), env=env)


def test_add_list_and_remove_webhooks_and_commands(env: dict[str, str]) -> None:
    added = run(env, "alerts", "webhook", "add", "https://hooks.example.com/agent", "--secret", "s3cret", "--plugin", "shop")
    assert added.exit_code == 0, added.output
    assert added.stdout == "webhook 1 added: plugin shop's alerts and handoffs go to https://hooks.example.com/agent (signed)\n"
    assert run(env, "alerts", "command", "add", "mail -s alert ops@example.com", "--format", "slack").exit_code == 0
    listed = run(env, "alerts", "webhook", "list", "--json")
    (hook,) = json.loads(listed.stdout)
    assert hook["target"] == "https://hooks.example.com/agent" and hook["signed"] is True and "s3cret" not in listed.stdout
    assert "mail -s alert" in run(env, "alerts", "command", "list").stdout
    wrong = run(env, "alerts", "command", "remove", "1")
    assert wrong.exit_code == 1 and "outlet 1 is a webhook; remove it with `agent alerts webhook remove 1`" in wrong.output
    assert run(env, "alerts", "webhook", "remove", "1").exit_code == 0
    assert run(env, "alerts", "webhook", "list").stdout == "no webhooks; add one with `agent alerts webhook add`\n"
    again = run(env, "alerts", "webhook", "remove", "1")
    assert again.exit_code == 1 and "no webhook 1; see `agent alerts webhook list`" in again.output


def test_a_url_that_is_not_http_is_refused_and_nothing_is_stored(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "alerts", "webhook", "add", "http://localhost:9000/ok").exit_code == 0
    for url in ("ftp://files.example.com/drop", "hooks.example.com/agent", "http:///nohost"):
        result = run(env, "alerts", "webhook", "add", url, "--secret", "s")
        assert result.exit_code == 1
        assert f"Error: the URL '{url}' is not an http:// or https:// URL with a host; give one like" in result.output
    rows = Store(tmp_path / "home" / "agent.db").query("SELECT target FROM outlets")
    assert rows == [{"target": "http://localhost:9000/ok"}]


def test_deliveries_show_every_attempt_and_retry_sends_the_failed_again(env: dict[str, str], tmp_path: Path) -> None:
    up = {"now": False}
    with Receiver(lambda path, n: 200 if up["now"] else 503) as r:
        assert run(env, "alerts", "webhook", "add", r.url()).exit_code == 0
        store = Store(tmp_path / "home" / "agent.db")
        publish(store, "alert", {"message": "cards: negative share 55%"}, plugin="shop")
        first = run(env, "alerts", "retry", "--all", "--wait", "5")  # nothing failed yet: it sends what is due
        assert first.exit_code == 0 and "0 deliveries queued again" in first.stdout and "1 failed" in first.stdout
        shown = run(env, "alerts", "deliveries", "--failed")
        assert "alert from shop to webhook 1" in shown.stdout and "failed, 2 attempt(s)" in shown.stdout
        assert shown.stdout.count("failed  503 HTTP 503 Service Unavailable") == 2
        up["now"] = True
        second = run(env, "alerts", "retry", "1", "--wait", "5")
        assert second.exit_code == 0 and "1 delivery queued again" in second.stdout and "1 delivered" in second.stdout
    (row,) = json.loads(run(env, "alerts", "deliveries", "--json").stdout)
    assert row["state"] == "delivered" and [t["status"] for t in row["tries"]] == [503, 503, 200]
    assert run(env, "alerts", "deliveries", "--failed").stdout == "no failed deliveries\n"


def test_outlets_declared_in_plugin_toml_are_listed_kept_in_step_and_not_removed_by_hand(env: dict[str, str],
                                                                                           plugin_root: Path) -> None:
    toml = plugin_root / "shop" / "plugin.toml"
    plain = toml.read_text()
    toml.write_text(plain + DECLARED.format(url="https://hooks.example.com/shop"))
    listed = json.loads(run(env, "alerts", "webhook", "list", "--json").stdout)
    assert [(h["target"], h["plugin"], h["secret_env"], h["source"]) for h in listed] == [
        ("https://hooks.example.com/shop", "shop", "SHOP_HOOK_SECRET", str(toml))]
    assert "notify-ops" in run(env, "alerts", "command", "list").stdout
    refused = run(env, "alerts", "webhook", "remove", str(listed[0]["id"]))
    assert refused.exit_code == 1 and f"is declared in {toml} ([[outlets]]); remove it there" in refused.output
    toml.write_text(plain + DECLARED.format(url="https://hooks.example.com/v2"))
    again = json.loads(run(env, "alerts", "webhook", "list", "--json").stdout)
    assert [h["target"] for h in again] == ["https://hooks.example.com/v2"]
    toml.write_text(plain)
    assert run(env, "alerts", "command", "list").stdout.startswith("no commands")


@pytest.mark.parametrize("table, message", [
    ('[[outlets]]\nurl = "ftp://x"\n', "key 'outlets[0].url' must be an http:// or https:// URL with a host, found 'ftp://x'"),
    ('[[outlets]]\nurl = "https://x.example"\ncommand = "y"\n', "[[outlets]] number 1 has both url and command; keep one"),
    ('[[outlets]]\nformat = "slack"\n', "[[outlets]] number 1 has neither url nor command"),
    ('[[outlets]]\nurl = "https://x.example"\nsecert_env = "A"\n', "unknown key 'secert_env' in [[outlets]] number 1; did you mean 'secret_env'?"),
    ('[[outlets]]\ncommand = "x"\nsecret_env = "A"\n', "key 'outlets[0].secret_env' is for webhooks"),
    ('[[outlets]]\nurl = "https://x.example"\nformat = "xml"\n', "key 'outlets[0].format' must be one of 'json', 'slack', found 'xml'"),
    ('[outlets]\nurl = "https://x.example"\n', "key 'outlets' must be an array of tables: [[outlets]]"),
])
def test_a_bad_outlets_table_names_the_file_the_key_and_the_fix(tmp_path: Path, table: str, message: str) -> None:
    folder = make_plugin(tmp_path)
    toml = folder / "plugin.toml"
    toml.write_text(toml.read_text().replace("[labels]", table + "\n[labels]", 1))
    with pytest.raises(PluginError, match=r"plugin\.toml") as err:
        load_manifest(folder)
    assert message in str(err.value)
