"""A new kind of scenario shipped as a pip package: its own manifest table, a migration creating its
table, a CLI command, a responder hook that reads the turn's embedding and writes a row, and a reply
extra shown by `agent ask`; fine-tuning it writes only under the home, never into the package."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_authoring import agent_cli, wheel_of

HOOKS = '''
import click
from agent import hookimpl

@hookimpl
def register_tables(register):
    def parse(table, manifest):
        t = table.sub("tickets", {"queue"})
        return None if t is None else {"queue": t.get("queue", str, expected="a queue name")}
    register("tickets", parse)

def m001_tickets(db):
    db["ticket_rows"].create({"id": int, "text": str, "queue": str, "dims": int, "norm": float, "user_id": str}, pk="id")

@hookimpl
def register_migrations(register):
    register("tickets", m001_tickets)

@hookimpl
def register_commands(cli):
    @cli.command("tickets")
    @click.pass_context
    def tickets(ctx):
        """List the tickets the desk opened."""
        from agent.cli.util import make_agent
        for row in make_agent(ctx).store.query("SELECT * FROM ticket_rows ORDER BY id"):
            click.echo(f"#{row['id']} [{row['queue']}] {row['text']} ({row['dims']} dims, norm {row['norm']:.2f}, {row['user_id']})")

@hookimpl
def build_reply(plugin, text, answer, embedding, store, user, fallback_reason):
    if fallback_reason:
        return None
    import numpy as np
    from agent.plugin.manifest import load_manifest
    from pathlib import Path
    queue = load_manifest(Path(__file__).parent).tables["tickets"]["queue"]
    [ticket] = store.insert("ticket_rows", [{"text": text, "queue": queue, "dims": int(embedding.shape[0]),
                                             "norm": float(np.linalg.norm(embedding)), "user_id": user}], ids=True)
    return {"text": f"{answer} Ticket {ticket} is open.", "extras": {"ticket": ticket, "queue": queue}}
'''
MANIFEST = '''
name = "tickets"
description = "A returns desk that opens a ticket for every request, shipped as a package"

[labels]
return_item = "Send an item back and return it"
refund_status = "When the refund for a return arrives"

[data]
examples = "examples.csv"

[tickets]
queue = "returns"
'''
EXAMPLES = "text,label\n" + "\n".join(
    [f"{t},return_item" for t in ("how do I send these shoes back", "I want to return my jacket", "return label please",
                                  "can I send the parcel back", "the dress does not fit so return it", "how to return an item")]
    + [f"{t},refund_status" for t in ("where is my refund", "when will I get my money back", "refund not arrived yet",
                                      "how long does a refund take", "my refund is late", "status of my refund")]) + "\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package pip-installed into a folder of its own."""
    tmp = tmp_path_factory.mktemp("kind")
    files = {"agent_tickets/__init__.py": HOOKS, "agent_tickets/plugin.toml": MANIFEST, "agent_tickets/examples.csv": EXAMPLES}
    path = wheel_of(tmp, "agent_tickets", "agent-tickets", "tickets", files)
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target),
                    str(path)], check=True)
    return target


def checksum(folder: Path) -> str:
    """One digest of every file's path and bytes under a folder."""
    digest = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            digest.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return digest.hexdigest()


def test_a_packaged_kind_answers_writes_its_table_and_adds_a_command(site: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    asked = agent_cli(["--device", "cpu", "ask", "--user", "ann", "how do I send these boots back?"], home, site,
                      AGENT_LOAD_PLUGINS="tickets")
    assert asked.returncode == 0, asked.stderr
    assert "Ticket 1 is open." in asked.stdout and "tickets: ticket 1" in asked.stdout and "tickets: queue returns" in asked.stdout
    listed = agent_cli(["tickets"], home, site, AGENT_LOAD_PLUGINS="tickets")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "#1 [returns] how do I send these boots back? (384 dims, norm 1.00, ann)"
    as_json = json.loads(agent_cli(["--device", "cpu", "ask", "--json", "where is my refund?"], home, site,
                                   AGENT_LOAD_PLUGINS="tickets").stdout)
    assert as_json["extras"] == {"tickets": {"ticket": 2, "queue": "returns"}} and as_json["label"] == "refund_status"


def test_finetuning_a_packaged_plugin_writes_only_under_the_home(site: Path, tmp_path: Path) -> None:
    home, package = tmp_path / "home", site / "agent_tickets"
    before = checksum(package)
    tuned = agent_cli(["--device", "cpu", "finetune", "tickets", "--mode", "head", "--json"], home, site,
                      AGENT_LOAD_PLUGINS="tickets")
    assert tuned.returncode == 0, tuned.stderr
    report = json.loads(tuned.stdout)
    assert report["status"] == "promoted" and (home / "models" / "tickets" / report["version"] / "report.md").is_file()
    assert checksum(package) == before  # the package folder is read-only input: nothing written there
    rolled = agent_cli(["finetune", "tickets", "--versions", "--json"], home, site, AGENT_LOAD_PLUGINS="tickets")
    assert [r["status"] for r in json.loads(rolled.stdout)] == ["current"]
    asked = agent_cli(["--device", "cpu", "ask", "--json", "return my jacket"], home, site, AGENT_LOAD_PLUGINS="tickets")
    assert json.loads(asked.stdout)["label"] == "return_item"
