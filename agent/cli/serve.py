"""`agent serve` (the HTTP service) and `agent keys` (who may call it)."""

from __future__ import annotations

import json

import click

from agent.cli.util import make_settings
from agent.plugin.hookspecs import hookimpl
from agent.serve.keys import SCOPES


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on (this machine only by default).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--public-chat", is_flag=True, help="Let the chat routes (messages, Rasa's channel) answer without a key; nothing else opens.")
@click.option("--insecure", is_flag=True, help="Listen beyond this machine even though no key exists.")
@click.option("--cors-origin", "cors", multiple=True, metavar="ORIGIN", help="A browser origin allowed to call the API (repeat).")
@click.option("--rate", default="20/second", show_default=True, help="Requests per key (per address for public chat).")
@click.option("--max-body", default=64 * 1024, show_default=True, type=click.IntRange(1024), help="Bytes of one request body.")
@click.option("--batch-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0, 1000),
              help="How long a message waits for others to share its encoder pass.")
@click.option("--max-batch", default=64, show_default=True, type=click.IntRange(1, 1024), help="Messages per encoder pass at most.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, public_chat: bool, insecure: bool, cors: tuple[str, ...], rate: str,
          max_body: int, batch_wait_ms: float, max_batch: int) -> None:
    """Serve the agent over HTTP: the /v1 API (docs at /docs), Rasa's REST channel, /healthz, /readyz, /metrics."""
    from agent.serve.app import ServeOptions
    from agent.serve.app import serve as run
    from agent.serve.keys import list_keys
    from agent.serve.security import RateLimiter, check_binding
    from agent.store import Store

    settings = make_settings(ctx)
    store = Store(settings.db_path)
    keys = len(list_keys(store))
    store.close()
    check_binding(host, keys, insecure)
    RateLimiter(rate)  # a bad --rate is refused before the models load
    options = ServeOptions(public_chat, list(cors), rate, max_body, batch_wait_ms, max_batch, ctx.obj["device"])
    click.echo(f"serving {settings.home} on http://{host}:{port} (API docs: /docs; {keys} key(s)"
               f"{', public chat' if public_chat else ''}); Ctrl-C stops", err=True)
    run(settings, options, host, port)


@click.group()
def keys() -> None:
    """Keys of the HTTP service: each has scopes (chat, feedback, monitor, review, operator, admin)."""


@keys.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True, help=f"One of {', '.join(SCOPES)} (repeat it).")
@click.pass_context
def keys_create(ctx: click.Context, name: str, scopes: tuple[str, ...]) -> None:
    """Make a key; it is printed once, and the home keeps only its hash."""
    from agent.serve.keys import create_key

    with _store(ctx) as store:
        secret = create_key(store, name, list(scopes))
    click.echo(secret)
    click.echo(f"key '{name}' ({', '.join(dict.fromkeys(scopes))}): keep it now, it is not shown again", err=True)


@keys.command("list")
@click.option("--all", "everything", is_flag=True, help="Revoked keys too.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_list(ctx: click.Context, everything: bool, as_json: bool) -> None:
    """The keys: name, scopes, when made (and revoked)."""
    from agent.serve.keys import list_keys

    with _store(ctx) as store:
        found = list_keys(store, revoked=everything)
    if as_json:
        click.echo(json.dumps([k.to_dict() for k in found], indent=2))
    for k in found if not as_json else []:
        click.echo(f"{k.name}\t{','.join(k.scopes)}\t{k.created_at}" + (f"\trevoked {k.revoked_at}" if k.revoked_at else ""))
    if not found and not as_json:
        click.echo("no keys; make one with: agent keys create NAME --scope chat")


@keys.command("revoke")
@click.argument("name")
@click.pass_context
def keys_revoke(ctx: click.Context, name: str) -> None:
    """Revoke a key at once: a running server refuses it from its next request."""
    from agent.serve.keys import revoke_key

    with _store(ctx) as store:
        revoke_key(store, name)
    click.echo(f"revoked key '{name}'")


class _store:
    """The home's database, closed after use."""

    def __init__(self, ctx: click.Context) -> None:
        from agent.store import Store

        self.store = Store(make_settings(ctx).db_path)

    def __enter__(self) -> object:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()


@hookimpl
def register_commands(cli: click.Group) -> None:
    """`serve`, `keys`."""
    cli.add_command(serve)
    cli.add_command(keys)
