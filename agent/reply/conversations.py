"""What the agent remembers of each conversation between turns: the responder '/use NAME' chose, and the labels
its last turn offered where no log holds them (a dry run's, or one a switch closed)."""

from __future__ import annotations

from typing import Any, Callable

from agent.reply import offers as two

Offered = tuple[int | None, str, list[two.Choice]]  # (offering turn's id, its plugin, the choices)
LIMIT = 10_000  # conversations whose unlogged offers are kept


class Conversations:
    """Per-conversation state of one agent: forced responders and open offers."""

    def __init__(self) -> None:
        self._forced: dict[str, str] = {}
        self._offers: dict[str, Offered | None] = {}  # by conversation, newest turn's

    def forced(self, conversation_id: str) -> str | None:
        """The responder '/use NAME' chose for this conversation, if any."""
        return self._forced.get(conversation_id)

    def use(self, conversation_id: str, plugin: str | None, close: bool = True) -> None:
        """Route the conversation to `plugin` from now on (None: back to routing); `close` closes an open offer."""
        if plugin is None:
            self._forced.pop(conversation_id, None)
        else:
            self._forced[conversation_id] = plugin
        if close:
            self.close_offer(conversation_id)

    def close_offer(self, conversation_id: str) -> None:
        """The conversation's last offer no longer stands (a switch of responder)."""
        self._offers[conversation_id] = None

    def offer(self, conversation_id: str, logged: Callable[[], Offered | None]) -> Offered | None:
        """The conversation's open offer: the one kept here, else the one its logged last turn holds."""
        return self._offers[conversation_id] if conversation_id in self._offers else logged()

    def remember(self, replies: list[Any]) -> None:
        """Keep the offers of replies the log does not hold (bounded to recent conversations); a logged one is read back."""
        for reply in replies:
            self._offers.pop(reply.conversation_id, None)
            if reply.turn_id is None:
                self._offers[reply.conversation_id] = (None, reply.plugin or "", [two.Choice(**c) for c in reply.choices]) \
                    if reply.choices else None
        while len(self._offers) > LIMIT:
            self._offers.pop(next(iter(self._offers)))
