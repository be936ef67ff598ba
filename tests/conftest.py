"""Shared fixtures: the real encoder (loaded once), a tiny real plugin, a temporary home."""

from __future__ import annotations

import csv
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent.models.encoder import Encoder, shared_encoder
from agent.reply.agent import Agent
from agent.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")  # Debian's; Playwright drives it

EXAMPLES = {
    "card_lost": ["I lost my card", "my card was stolen yesterday", "block my card please", "I can't find my debit card",
                  "someone took my wallet with my card"],
    "opening_hours": ["when are you open", "what time does the branch close", "are you open on sunday",
                      "opening hours of the office", "what are your hours today"],
    "refund": ["I want my money back", "how do I get a refund", "refund my order please",
               "the item was broken, I need a refund", "can I return this for a refund"],
}
# a second few-shot plugin's intents (labels without descriptions)
DESK = {"password_reset": ["I forgot my password", "reset my password please", "I can't log in, password lost",
                           "how do I change my password", "my password does not work", "new password needed"],
        "invoice_copy": ["send me a copy of my invoice", "where can I download my invoice", "I need last month's bill",
                         "can I get the invoice again", "invoice for my order please", "my receipt is missing"],
        "delivery_time": ["when will my parcel arrive", "how long does shipping take", "my order is late",
                          "where is my delivery", "is my package on its way", "expected delivery date"]}
FAQ = [
    ("lost-1", "How do I block a lost card?", "Freeze it in the app under Cards > Freeze.", "card_lost"),
    ("lost-2", "My card was stolen, what now?", "Call us on 0800 000 000 to cancel it.", "card_lost"),
    ("hours-1", "What are your opening hours?", "We are open 9 to 5, Monday to Saturday.", "opening_hours"),
    ("hours-2", "Are you open on holidays?", "Branches close on public holidays.", "opening_hours"),
    ("refund-1", "How do I ask for a refund?", "Refunds are requested under Orders > Refund.", "refund"),
    ("refund-2", "How long does a refund take?", "Refunds arrive within 5 working days.", "refund"),
]
MANIFEST = """
name = "{name}"
description = "{description}"
role = "responder"

[labels]
card_lost = "A lost or stolen card"
opening_hours = "When the branch is open"
refund = "Getting money back for a purchase"

[data]
examples = "examples.csv"

[retrieval]
corpus = "faq.csv"
top_k = 2

[thresholds]
min_confidence = 0.30
min_margin = 0.0
min_similarity = 0.40
"""


def write_csv(path: Path, header: list[str], rows: list[tuple[str, ...]]) -> Path:
    """Write a small CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def make_plugin(root: Path, name: str = "shop", description: str = "A small shop's help desk") -> Path:
    """A tiny but real responder plugin folder."""
    folder = root / name
    write_csv(folder / "examples.csv", ["text", "label"], [(t, lab) for lab, ts in EXAMPLES.items() for t in ts])
    write_csv(folder / "faq.csv", ["id", "question", "answer", "label"], FAQ)
    (folder / "plugin.toml").write_text(MANIFEST.format(name=name, description=description))
    return folder


def two_plugin_home(tmp_path: Path, desk: dict[str, list[str]]) -> Settings:
    """A home with `shop` and `desk`: labels without descriptions, the examples given, no corpus."""
    root = tmp_path / "plugins"
    make_plugin(root)
    write_csv(root / "desk" / "examples.csv", ["text", "label"], [(t, lab) for lab, ts in desk.items() for t in ts])
    (root / "desk" / "plugin.toml").write_text('name = "desk"\ndescription = "Accounts and invoices"\n\n[data]\nexamples = "examples.csv"\n')
    return Settings(home=tmp_path / "home", plugin_paths=[root])


def models_of(home: Path, name: str) -> Path:
    """Where a plugin's fine-tuned versions live: HOME/models/NAME (never in the plugin folder)."""
    return Path(home) / "models" / name


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The real packaged encoder on the CPU, loaded once for the whole run."""
    return shared_encoder("cpu")


@pytest.fixture(scope="session", autouse=True)
def _remembered_embeddings() -> None:
    """The shared encoders remember each text's embedding for the run, so the bundled plugins' examples, which
    many tests index in fresh homes, are embedded once (the same weights give the same vectors)."""
    from agent.models.encoder import pick_device

    for device in ("cpu", "auto") if pick_device("auto") == "cpu" else ("cpu",):
        _remember(shared_encoder(device))


def _remember(enc: Encoder) -> None:
    """Wrap one encoder's forward pass with a cache by text."""
    import numpy as np

    if getattr(enc, "_remembers", False):
        return
    forward, seen = enc._forward, {}

    def cached(batch: list[str]) -> "np.ndarray":
        missing = [t for t in dict.fromkeys(batch) if t not in seen]
        if missing:
            seen.update(zip(missing, forward(missing)))
        return np.stack([seen[t] for t in batch])

    enc._forward, enc._remembers = cached, True  # type: ignore[method-assign]


@pytest.fixture
def plugin_root(tmp_path: Path) -> Path:
    """A folder holding one tiny plugin, `shop`."""
    root = tmp_path / "plugins"
    make_plugin(root)
    return root


@pytest.fixture
def settings(tmp_path: Path, plugin_root: Path) -> Settings:
    """A temporary home that sees only the tiny plugin."""
    return Settings(home=tmp_path / "home", plugin_paths=[plugin_root])


@pytest.fixture
def agent(settings: Settings, encoder: Encoder) -> Agent:
    """An agent over the tiny plugin, with a real database in the temporary home."""
    return Agent(settings, encoder=encoder)


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run an app of `agent serve` on uvicorn in a thread, on a free loopback port, until its models are loaded; its URL.
    The server stops when the block ends."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not (srv.started and app.state.worker.ready.is_set()) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(30)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium, driven by Playwright (skips without either)."""
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    api = pytest.importorskip("playwright.sync_api", reason="Playwright is a test extra: pip install -e '.[test]'")
    with api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()
