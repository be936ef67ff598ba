"""The bodies the HTTP API takes and gives: pydantic models with field docs, so /openapi.json is the contract."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9_.:@+\-]{1,128}$"  # conversation and user ids: what URLs and logs carry safely
NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"


class MessageIn(BaseModel):
    """A message from a customer or a system."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, description="What the person wrote (at most AGENT_MAX_CHARS characters).")
    plugin: str | None = Field(None, pattern=NAME_PATTERN, description="Answer with this plugin instead of routing.")
    user: str | None = Field(None, pattern=ID_PATTERN, description="Who wrote it (profiles, item feedback); "
                                                                   "the conversation id when absent.")


class ReplyOut(BaseModel):
    """The agent's answer: the same Reply as `agent ask --json`."""

    text: str = Field(description="The answer to show.")
    plugin: str | None = Field(description="The plugin that answered.")
    label: str | None = Field(description="The label it decided on.")
    confidence: float | None
    hits: list[dict[str, Any]] = Field(description="Retrieved sources: id, score, text.")
    fallback_reason: str | None = Field(description="Why the agent did not guess, or null.")
    timings_ms: dict[str, float]
    turn_id: int | None = Field(description="The logged turn: give feedback on it.")
    conversation_id: str
    route_confidence: float | None = None
    predictions: list[dict[str, Any]] = []
    annotations: dict[str, Any] = {}
    warnings: list[str] = []
    answer_id: str | None = None
    extras: dict[str, dict[str, Any]] = Field({}, description="What plugins added, by plugin (a recommender's items; under "
                                                              "'messages', what a person wrote, to show before the text).")
    choices: list[dict[str, Any]] = Field([], description="Two labels offered: the next message picks with 1 or 2.")


class ItemEvent(BaseModel):
    """Feedback on an item a turn showed (a plugin kind registers the kinds: like, dislike, click)."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern=NAME_PATTERN, description="A feedback kind a plugin registers, e.g. like.")
    item: str = Field(min_length=1, max_length=256, description="The item's id.")


class FeedbackIn(BaseModel):
    """A correction or a rating of a logged turn: exactly one of label, rating or event."""

    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(None, max_length=64, description="The right label.")
    rating: Literal["good", "bad", "out_of_scope"] | None = Field(None, description="How the reply was.")
    event: ItemEvent | None = None
    note: str | None = Field(None, max_length=2000, description="A free-text note (redacted before it is stored).")
    new_label: bool = Field(False, description="Accept a label the plugin does not have yet.")
    conversation_id: str | None = Field(None, pattern=ID_PATTERN, description="The turn's conversation: checked when given, "
                                        "and needed for a rating or an item event without a key (the web page).")


class FinetuneIn(BaseModel):
    """How to fine-tune: as `agent finetune --mode --epochs` (both optional)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["shared", "full", "lora", "head"] | None = Field(None, description="The plugin's own choice when absent.")
    epochs: float | None = Field(None, gt=0, le=100)


class FeedbackOut(BaseModel):
    """What was stored."""

    turn_id: int
    stored: str


class RasaIn(BaseModel):
    """Rasa's REST channel: who sends, and what."""

    model_config = ConfigDict(extra="allow")  # Rasa clients may send metadata
    sender: str = Field(pattern=ID_PATTERN, description="The conversation (Rasa's sender id).")
    message: str = Field(min_length=1, description="The text, or a button's payload.")


class RasaButton(BaseModel):
    """A button: its payload, sent back as the next message, picks."""

    title: str
    payload: str


class RasaOut(BaseModel):
    """One bot message in Rasa's REST channel format."""

    recipient_id: str
    text: str
    buttons: list[RasaButton] | None = None
    custom: dict[str, Any] | None = Field(None, description="Who wrote it, when not the agent: {\"author\": \"person\"}.")


class ErrorOut(BaseModel):
    """Every error: what went wrong, and the field at fault when one is."""

    error: str
    fields: list[dict[str, str]] = []
