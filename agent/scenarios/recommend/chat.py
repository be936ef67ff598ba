"""The recommender's slash commands in the chat app: /like N, /dislike N (/reject N), /click N."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

MARKS = {"like": "♥ liked", "dislike": "⊘ rejected", "click": "→ clicked"}


def item_command(kind: str) -> Callable[[Any, str], None]:
    """The handler of one item command: picks item N (or ID) of the last reply and stores the feedback off the UI thread."""

    def run(app: Any, arg: str) -> None:
        from rich.markup import escape

        from agent.scenarios.recommend.events import item_feedback

        reply = app.last_turn()
        if reply is None:
            return
        ids = [i["id"] for i in reply.extra("items")]
        if not ids:
            app.say("the last reply recommended no items", "warning")
            return
        item_id = arg if arg in ids else ids[int(arg) - 1] if arg.isdigit() and 0 < int(arg) <= len(ids) else arg
        if item_id not in ids:
            app.say(f"give an item number 1-{len(ids)} or one of: {escape(', '.join(ids))}", "warning")
            return
        app.submit(partial(item_feedback, app.session.core(), reply.turn_id, item_id, kind),
                   app.stored(reply.turn_id, f"{MARKS[kind]} {item_id}"))

    return run
