"""Mode `shared`: one encoder fine-tuned for every plugin of the home, one encoder pass per turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import agent.cli.finetune  # noqa: F401  (registers the command)
from agent.cli.main import cli
from agent.errors import ModelError
from agent.learn.finetune import Options, finetune, rollback
from agent.learn.multitask import length_batches
from agent.models.home_encoder import encoder_versions, home_encoder
from agent.models.versions import Versions
from agent.reply.agent import Agent
from agent.settings import Settings
from conftest import models_of, two_plugin_home

DESK = {"password_reset": ["I forgot my password", "reset my password please", "I can't log in, password lost",
                           "how do I change my password", "my password does not work"],
        "invoice_copy": ["send me a copy of my invoice", "where can I download my invoice", "I need last month's bill",
                         "can I get the invoice again", "invoice for my order please"]}


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    """A home with two small plugins: `shop` and `desk` (other labels, no corpus)."""
    return two_plugin_home(tmp_path, DESK)


def shared_run(home: Settings, encoder, **kw) -> object:
    """A short shared fine-tune of `shop`."""
    return finetune(home.plugin_paths[0] / "shop", home, Options(device="cpu", epochs=kw.pop("epochs", 3), **kw),  # type: ignore[index]
                    encoder=encoder)


def test_length_batches_cover_every_row_once_and_keep_lengths_close() -> None:
    import torch

    lengths = [(i * 37) % 50 + 1 for i in range(1000)]
    batches = length_batches(lengths, 32, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.1 * sum(lengths)  # random batches would pad to about 1.9 times the tokens
    again = length_batches(lengths, 32, torch.Generator().manual_seed(1))
    assert again != batches


def test_shared_finetune_trains_one_encoder_for_every_plugin_and_turns_use_only_it(home: Settings, encoder) -> None:
    agent = Agent(home, encoder=encoder)
    assert agent.reply("when are you open", plugin="shop").label == "opening_hours"
    result = shared_run(home, encoder)
    assert result.status == "promoted" and result.report["run"]["mode"] == "shared"
    assert set(result.report["plugins"]) == {"shop", "desk"} and result.report["encoder_version"] == "v1"
    assert encoder_versions(home.home).current() == "v1"
    assert Versions(models_of(home.home, "shop")).current() == "v1"
    assert not (result.folder / "encoder").exists()  # the plugin's version holds its head only
    reply = agent.reply("what time does the branch close", plugin="shop")  # hot swap of the encoder, same Agent
    assert reply.label == "opening_hours"
    tuned = agent.encoder
    assert tuned is not encoder and tuned.fingerprint.split(":")[-1].startswith("shared-")
    assert agent.runtimes["shop"].model_state == "fine-tuned v1 (shared)"
    assert agent.runtimes["desk"].model_state == "shared encoder v1 (head)"
    for runtime in agent.runtimes.values():  # no plugin runs an encoder of its own
        assert runtime.classifier.encoder is None
        assert runtime.examples_index.meta["encoder"] == tuned.fingerprint  # rebuilt with the tuned encoder
    assert agent.reply("I forgot my password", plugin="desk").label == "password_reset"
    fresh = Agent(home, encoder=encoder)
    assert fresh.encoder is tuned and fresh.reply("refund my order please", plugin="shop").label == "refund"
    from agent.plugin.inventory import model_state

    states = {m.name: model_state(m, home) for m in fresh.manifests}
    assert states == {"shop": "fine-tuned v1 (shared: no extra pass)", "desk": "shared encoder v1 (head)"}


def test_rollback_of_a_shared_version_takes_the_encoder_back(home: Settings, encoder) -> None:
    shared_run(home, encoder)
    second = shared_run(home, encoder, epochs=2)
    assert second.status == "promoted" and encoder_versions(home.home).current() == "v2"
    moved, to = rollback(home.plugin_paths[0] / "shop", home)  # type: ignore[index]
    assert (moved, to) == ("v2", "v1") and encoder_versions(home.home).current() == "v1"
    moved, to = rollback(home.plugin_paths[0] / "shop", home)  # type: ignore[index]
    assert to == "(none)" and encoder_versions(home.home).current() is None
    assert home_encoder(home, "cpu", base=encoder) is encoder
    agent = Agent(home, encoder=encoder)
    assert agent.encoder is encoder and agent.runtimes["shop"].model_state.startswith("head")


def test_a_shared_candidate_that_hurts_another_plugin_is_not_promoted(home: Settings, encoder) -> None:
    shared_run(home, encoder)
    wrecked = shared_run(home, encoder, epochs=0.5, lr=0.3, mode="shared")
    assert wrecked.status == "rejected" and encoder_versions(home.home).current() == "v1"
    assert "not promoted" in wrecked.report["decision"]
    assert Versions(models_of(home.home, "shop")).current() == "v1"


def test_damaged_shared_weights_are_refused_with_the_fix(home: Settings, encoder) -> None:
    shared_run(home, encoder)
    weights = home.home / "encoder" / "v1" / "encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError, match="roll back"):
        from agent.models.home_encoder import load_version

        load_version(weights.parent.parent, "cpu")


def test_full_versions_still_load_beside_a_shared_encoder(home: Settings, encoder) -> None:
    full = finetune(home.plugin_paths[0] / "desk", home, Options(mode="full", device="cpu", epochs=2), encoder=encoder)  # type: ignore[index]
    assert full.status == "promoted"
    shared_run(home, encoder)
    agent = Agent(home, encoder=encoder)
    desk = agent.runtimes["desk"]
    assert desk.model_state == "fine-tuned v1 (full)" and desk.classifier.encoder is not None
    assert not desk.classifier.uses_probe  # its probe read the packaged encoder's embedding
    assert agent.reply("reset my password please", plugin="desk").label == "password_reset"


def test_cli_lists_shared_as_the_default_mode(home: Settings) -> None:
    result = CliRunner().invoke(cli, ["finetune", "--help"])
    assert result.exit_code == 0 and "shared (the default)" in " ".join(result.output.split())


def test_the_gate_holds_back_a_candidate_another_plugin_would_lose_by() -> None:
    from agent.learn.shared_mode import _judge_others

    def ev(cand: float, cur: float, lost_won: tuple[int, int] = (0, 0)) -> dict:
        return {"candidate": {"n": 10, "accuracy": cand}, "current": {"accuracy": cur}, "rows_lost_won": list(lost_won)}

    opts = Options()
    evaluations = {"shop": ev(0.9, 0.8), "desk": ev(0.5, 0.9, (6, 0)), "faq": ev(0.8, 0.805, (1, 0)),
                   "one": ev(0.7, 0.9, (3, 1))}  # one: 3 rows lost and 1 won can be chance
    promote, decision = _judge_others(True, "promoted: better", evaluations, "shop", opts)
    assert not promote and "desk 0.5000 vs 0.9000" in decision and "faq" not in decision and "one" not in decision
    opts.force = True
    promote, decision = _judge_others(True, "promoted: better", evaluations, "shop", opts)
    assert promote and "--force" in decision
    assert _judge_others(True, "ok", {"shop": ev(0.9, 0.8), "faq": ev(0.8, 0.805)}, "shop", Options()) == (True, "ok")
    from agent.learn.shared_mode import loss_is_real

    assert loss_is_real(5, 0) and loss_is_real(12, 3) and not loss_is_real(3, 1) and not loss_is_real(2, 0)


def test_neighbour_votes_follow_the_nearest_rows_and_help_only_when_held_out_rows_say_so() -> None:
    import numpy as np

    from agent.models.neighbours import MIN_HELD, blend, choose, votes

    scores = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.95]])
    voted = votes(scores, np.array([[0, 0, 1], [0, -1, 1]]), 2, 0.05)
    assert voted[0].argmax() == 0 and voted[1].argmax() == 1 and np.allclose(voted.sum(1), 1)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        x = centres[y] + 0.3 * rng.normal(size=(n, 16))
        return x / np.linalg.norm(x, axis=1, keepdims=True), y
    train, ytrain = points(90)
    held, yheld = points(MIN_HELD)
    wrong = np.full((MIN_HELD, 3), 0.2)
    wrong[np.arange(MIN_HELD), (yheld + 1) % 3] = 0.6  # a head that is always wrong: the votes must win
    chosen = choose(wrong, held, train, ytrain.tolist(), yheld.tolist())
    assert chosen["weight"] < 1.0 and chosen["accuracy"] > chosen["head_accuracy"]
    assert blend(wrong, votes(*_top(held @ train.T, ytrain, chosen["k"]), 3, chosen["tau"]), chosen["weight"]).shape == (MIN_HELD, 3)
    assert choose(wrong[:5], held[:5], train, ytrain.tolist(), yheld[:5].tolist())["weight"] == 1.0  # too few rows


def test_nearest_rows_come_block_by_block_as_from_the_whole_matrix(monkeypatch) -> None:
    import numpy as np

    from agent.models import neighbours

    rng = np.random.default_rng(1)
    queries, rows = rng.normal(size=(70, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)
    monkeypatch.setattr(neighbours, "CHUNK", 16)  # several blocks, the last one short
    scores, top = neighbours.nearest(queries, rows, 5)
    sims = queries @ rows.T
    assert (top == np.argsort(-sims, axis=1)[:, :5]).all()  # the same rows, most similar first
    assert np.allclose(scores, np.take_along_axis(sims, top, axis=1))
    assert neighbours.nearest(queries, rows[:3], 5)[1].shape == (70, 3)  # k is capped by the rows there are


def _top(sims, labels, k):
    import numpy as np

    top = np.argsort(-sims, axis=1)[:, :k]
    return np.take_along_axis(sims, top, axis=1), labels[top]


def test_a_shared_head_blends_the_neighbours_votes_as_its_config_says(home: Settings, encoder) -> None:
    import numpy as np

    shared_run(home, encoder)
    config_path = home.home / "encoder" / "v1" / "heads" / "desk" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["neighbours"]["weight"] == 1.0 and "too few" in config["neighbours"]["reason"]
    config["neighbours"] = {"weight": 0.0, "k": 3, "tau": 0.05}  # the votes alone
    config_path.write_text(json.dumps(config))
    runtime = Agent(home, encoder=encoder).runtimes["desk"]
    vectors = runtime.encoder.encode(["my password does not work at all"])
    head = runtime.classifier.predict_proba(["x"], vectors)
    votes = runtime._votes(vectors, 3, 0.05)
    probs = runtime.classify(vectors, ["my password does not work at all"])
    order = [runtime.classifier.labels.index(lab) for lab in runtime.labels]
    assert np.allclose(probs, votes[:, order], atol=1e-5) and not np.allclose(probs, head[:, order], atol=1e-3)
    assert runtime.labels[int(probs.argmax())] == "password_reset"


def test_rolling_back_one_plugin_leaves_an_encoder_another_plugin_moved_on(home: Settings, encoder) -> None:
    desk = home.plugin_paths[0] / "desk"  # type: ignore[index]
    finetune(desk, home, Options(device="cpu", epochs=2), encoder=encoder)  # encoder v1
    shared_run(home, encoder, epochs=2)  # encoder v2, made from v1
    assert rollback(home.plugin_paths[0] / "shop", home) == ("v1", "(none)")  # type: ignore[index]
    assert encoder_versions(home.home).current() == "v1"  # the one before shop's run, which desk was made for
    finetune(desk, home, Options(device="cpu", epochs=2), encoder=encoder)  # encoder v3
    shared_run(home, encoder, epochs=2)  # encoder v4
    finetune(desk, home, Options(device="cpu", epochs=2), encoder=encoder)  # encoder v5: desk moved it on
    assert encoder_versions(home.home).current() == "v5"
    rollback(home.plugin_paths[0] / "shop", home)  # type: ignore[index]
    assert encoder_versions(home.home).current() == "v5"  # shop's rollback does not undo desk's run
    agent = Agent(home, encoder=encoder)
    assert agent.runtimes["desk"].model_state == "fine-tuned v3 (shared)"
    assert agent.reply("I forgot my password", plugin="desk").label == "password_reset"


def test_a_damaged_shared_encoder_falls_back_to_the_packaged_one_with_a_note(home: Settings, encoder) -> None:
    shared_run(home, encoder)
    weights = home.home / "encoder" / "v1" / "encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    notes: list[str] = []
    agent = Agent(home, encoder=encoder, notify=notes.append)
    assert agent.reply("when are you open", plugin="shop").label == "opening_hours"
    assert agent.encoder is encoder and any("packaged encoder meanwhile" in n for n in notes)
    assert any("made for another encoder" in n for n in notes) and agent.runtimes["shop"].model_state.startswith("head")


def test_an_agent_on_a_tuned_encoder_lets_the_packaged_one_go(home: Settings, encoder, monkeypatch) -> None:
    from agent.models import encoder as encoders

    monkeypatch.setattr(encoders, "_shared", {"cpu": encoder, "auto": encoder})  # this test's own process-wide cache
    agent = Agent(home, device="cpu")  # no encoder passed: as the chat app and the server make theirs
    assert agent.reply("when are you open", plugin="shop").label == "opening_hours" and agent.encoder is encoder
    shared_run(home, encoder)
    assert encoders._shared  # a fine-tune alone lets nothing go: the turns still use the packaged encoder
    assert agent.reply("what time does the branch close", plugin="shop").label == "opening_hours"
    assert agent.encoder.tag and encoders._shared == {}  # the next fine-tune loads the packaged one again
