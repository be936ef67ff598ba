"""The recommender plugin: requests, follow-ups, profiles, the feedback loop and the interest model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.errors import AgentError
from agent.learn.finetune import Options, finetune
from agent.models.versions import Versions
from agent.reply.agent import Agent
from agent.scenarios.recommend.events import ItemStore, item_feedback
from agent.scenarios.recommend.items import read_items
from agent.scenarios.recommend.model import Profile, avoid_adjustment, avoided_terms
from agent.scenarios.recommend.plugin import __name__ as RECOMMENDER
from agent.settings import Settings
from conftest import REPO, models_of, write_csv


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A copy of plugins/recommender."""
    folder = tmp_path / "plugins" / "recommender"
    shutil.copytree(REPO / "plugins" / "recommender", folder, ignore=shutil.ignore_patterns("interest", "__pycache__"))
    return folder


@pytest.fixture
def agent(shop: Path, tmp_path: Path, encoder) -> Agent:
    return Agent(Settings(home=tmp_path / "home", plugin_paths=[shop.parent]), encoder=encoder)


def categories(agent: Agent, items: list[dict]) -> list[str]:
    by_id = {i.id: i for i in agent.runtimes["recommender"].extensions[RECOMMENDER].rec.items}
    return [by_id[i["id"]].category for i in items]


def test_a_conversation_of_requests_and_follow_ups(agent: Agent) -> None:
    house = agent.reply("I want to save for a house", "c1", "recommender", user="ann")
    assert house.label == "recommend" and len(house.extra("items")) == 3
    assert set(categories(agent, house.extra("items"))) <= {"savings", "mortgages", "books", "advice"}
    assert all(i["reason"] for i in house.extra("items"))

    travel = agent.reply("something like the travel card but without fees", "c1", user="ann")
    ids = [i["id"] for i in travel.extra("items")]
    assert travel.text == "Here are some ideas similar to Northwind Travel Card, without fees:" and "travel-card" not in ids
    assert all("no fees" in i["reason"] for i in travel.extra("items"))

    more = agent.reply("more like that", "c1", user="ann")
    assert more.label == "more_like_this" and more.text == f"More like {travel.extra('items')[0]['title']}:"
    assert not {i["id"] for i in more.extra("items")} & {*ids, *[i["id"] for i in house.extra("items")]}  # nothing shown twice

    rejected = more.extra("items")[1]["id"]
    no = agent.reply("not the second one", "c1", user="ann")
    assert no.label == "not_this" and no.text.startswith(f"Understood, not {more.extra('items')[1]['title']}")
    stored = ItemStore(agent.store).turn_feedback(more.turn_id)
    assert [(f["item_id"], f["kind"]) for f in stored] == [(rejected, "dislike")]
    for text in ("more like that", "a card for travelling abroad", "show me travel cards without fees"):
        assert rejected not in [i["id"] for i in agent.reply(text, "c2", "recommender", user="ann").extra("items")]


def test_liking_a_shown_item_is_stored_and_shapes_the_reasons(agent: Agent) -> None:
    shown = agent.reply("a good pair of headphones for running", "c1", "recommender", user="bo")
    liked = agent.reply("I like the first one", "c1", user="bo")
    assert liked.label == "like_this" and liked.text.startswith(f"Noted, you like {shown.extra('items')[0]['title']}")
    assert [(f["item_id"], f["kind"]) for f in ItemStore(agent.store).turn_feedback(shown.turn_id)] == [(shown.extra("items")[0]["id"], "like")]
    later = agent.reply("any electronics you would suggest?", "c2", "recommender", user="bo")
    assert any(f"like {shown.extra('items')[0]['title']}, which you liked" in i["reason"] for i in later.extra("items"))


def test_feedback_loop_shifts_the_next_recommendations(agent: Agent) -> None:
    """Dislike kitchen items, like books: a vague request then leans to books and away from the kitchen."""
    before = agent.reply("what would you recommend for me?", "c0", "recommender", user="cy")
    rec = agent.runtimes["recommender"].extensions[RECOMMENDER].rec
    kitchen = agent.reply("kitchen gadgets for cooking", "c1", "recommender", user="cy")
    for item in kitchen.extra("items"):
        item_feedback(agent, kitchen.turn_id, item["id"], "dislike")
    books = agent.reply("books about money and buying a home", "c1", user="cy")
    for item in books.extra("items"):
        item_feedback(agent, books.turn_id, item["id"], "like")
    after = agent.reply("what would you recommend for me?", "c2", "recommender", user="cy")
    profile = Profile.from_events("cy", ItemStore(agent.store).item_events("recommender", "cy"))
    top10 = rec.rank(profile, agent.encoder.encode(["what would you recommend for me?"])[0], rec.stats([]), k=10)
    assert sum(s.item.category == "books" for s in top10) >= 4 and not any(s.item.category == "kitchen" for s in top10)
    assert categories(agent, after.extra("items")).count("books") > categories(agent, before.extra("items")).count("books")
    assert not set(i["id"] for i in after.extra("items")) & {i["id"] for i in kitchen.extra("items")}
    other = agent.reply("kitchen gadgets for cooking", "c3", "recommender", user="dee")  # profiles are per user
    assert [i["id"] for i in other.extra("items")] == [i["id"] for i in kitchen.extra("items")]


def test_finetune_learns_the_interest_model_from_logged_feedback_and_hot_swaps(agent: Agent, shop: Path,
                                                                             tmp_path: Path, encoder) -> None:
    for user, wants in (("u1", "savings accounts for a house deposit"), ("u2", "travel gear for a long trip"),
                        ("u3", "headphones and speakers"), ("u4", "books about money")):
        for n in range(2):
            shown = agent.reply(wants if n == 0 else "more like that", f"{user}-c", "recommender", user=user)
            for item in shown.extra("items"):
                item_feedback(agent, shown.turn_id, item["id"], "like")
    settings = Settings(home=tmp_path / "home", plugin_paths=[shop.parent])
    result = finetune(shop, settings, Options(device="cpu", epochs=2), encoder=encoder)
    report = result.report
    assert result.version == "v1" and report["kind"] == "interest" and report["run"]["pairs"] > 0
    assert report["heldout"]["candidate"]["users"] == 4
    assert set(report["weights"]) == {"request", "collab", "profile", "interest", "popularity", "together"}
    folder = models_of(tmp_path / "home", "recommender") / "interest" / "v1"
    assert (folder / "encoder" / "model.safetensors").is_file() and (folder / "items.npy").is_file()
    if result.status == "promoted":
        agent.reply("savings", "x", "recommender", user="u1")  # the next turn picks it up
        assert agent.runtimes["recommender"].extensions[RECOMMENDER].rec.interest.version == "v1"
        assert Versions(models_of(tmp_path / "home", "recommender") / "interest").current() == "v1"
    else:
        assert "against" in report["decision"]


def test_finetune_without_feedback_says_what_to_do(shop: Path, tmp_path: Path, encoder) -> None:
    with pytest.raises(AgentError, match="no liked or clicked items to learn from yet"):
        finetune(shop, Settings(home=tmp_path / "home", plugin_paths=[shop.parent]), Options(device="cpu"), encoder=encoder)


def test_avoided_terms_and_their_adjustment(shop: Path) -> None:
    assert avoided_terms("something like the travel card but without fees") == ["fees"]
    assert avoided_terms("no annual fee please, and not that one") == ["annual fee"]
    items = {i.id: i for i in read_items(shop / "items.csv")}
    adj = avoid_adjustment([items["travel-card"], items["globetrotter-debit-card"]], ["fees"])
    assert adj[0] < 0 < adj[1]


def test_bad_items_and_interactions_files_name_the_fix(tmp_path: Path, encoder) -> None:
    folder = tmp_path / "plugins" / "recs"
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text('name = "recs"\ndescription = "d"\n[labels]\nrecommend = "asking"\nnot_this = "no"\n'
                                        '[recommend]\nitems = "items.csv"\ninteractions = "past.csv"\ntop_k = 2\n')
    write_csv(folder / "items.csv", ["id", "title"], [("a", "Apple"), ("b", "Banana"), ("a", "Avocado")])
    write_csv(folder / "past.csv", ["user_id", "item_id", "kind"], [("u", "a", "like")])
    settings = Settings(home=tmp_path / "home", plugin_paths=[folder.parent])
    with pytest.raises(AgentError, match=r"items.csv: item id 'a' is used by rows 1 and 3; ids must be unique"):
        Agent(settings, encoder=encoder).load_runtime(folder)
    write_csv(folder / "items.csv", ["id", "name"], [("a", "Apple")])
    with pytest.raises(AgentError, match=r"expected columns \['id', 'title'\].*items file needs id,title"):
        Agent(settings, encoder=encoder).load_runtime(folder)
    write_csv(folder / "items.csv", ["id", "title"], [("a", "Apple"), ("b", "Banana")])
    write_csv(folder / "past.csv", ["user_id", "item_id", "kind"], [("u", "a", "like"), ("u", "zz", "love")])
    with pytest.raises(AgentError, match=r"past.csv: line 3: kind 'love' is not one of"):
        Agent(settings, encoder=encoder).load_runtime(folder)
    (folder / "plugin.toml").write_text('name = "recs"\ndescription = "d"\n[labels]\nrecommend = "asking"\nnot_this = "no"\n'
                                        '[recommend]\nitems = "items.csv"\ntop_k = 0\n')
    with pytest.raises(AgentError, match=r"top_k.*a whole number from 1 to 20"):
        Agent(settings, encoder=encoder).load_runtime(folder)


def test_profiles_keep_rejections_and_follow_ups_without_a_target_ask(agent: Agent) -> None:
    events = [{"item_id": "a", "kind": "like"}, {"item_id": "b", "kind": "dislike"}, {"item_id": "b", "kind": "click"},
              {"item_id": "c", "kind": "click"}, {"item_id": "a", "kind": "click"}, {"item_id": "d", "kind": "dislike"},
              {"item_id": "d", "kind": "like"}]
    p = Profile.from_events("u", events)
    assert p.disliked == ["b"] and p.positives() == ["c", "a", "d"]  # a click does not lift a rejection; a like does
    first = agent.reply("more like that", "fresh", "recommender", user="eve")
    assert first.extra("items") == [] and first.text.startswith("Which item do you mean?")
    shown = agent.reply("travel gear for a long trip", "fresh", user="eve")
    fifth = agent.reply("not the fifth one", "fresh", user="eve")
    assert fifth.extra("items") == [] and fifth.text == f"I showed {len(shown.extra('items'))} items; say which one, for example \"the second one\"."
    assert ItemStore(agent.store).turn_feedback(shown.turn_id) == []  # nothing was disliked by mistake
    assert avoided_terms("not the second one") == [] and avoided_terms("no fees please") == ["fees"]


def test_a_dry_run_stores_no_item_feedback(agent: Agent) -> None:
    from agent.reply.agent import Message

    shown = agent.reply("travel gear for a long trip", "dry", "recommender", user="fay")
    [reply] = agent.replies([Message("not the first one", "dry", None, "fay")], log=False)
    assert reply.label == "not_this" and reply.turn_id is None and shown.extra("items")[0]["id"] not in [i["id"] for i in reply.extra("items")]
    assert ItemStore(agent.store).turn_feedback(shown.turn_id) == [] and ItemStore(agent.store).item_events("recommender", "fay") == []


def with_interactions(shop: Path, rows: list[tuple[str, ...]]) -> None:
    """Give the plugin an interactions file with these rows (user_id, item_id, kind, timestamp)."""
    write_csv(shop / "interactions.csv", ["user_id", "item_id", "kind", "timestamp"], rows)
    manifest = (shop / "plugin.toml").read_text()
    (shop / "plugin.toml").write_text(manifest.replace('items = "items.csv"', 'items = "items.csv"\ninteractions = "interactions.csv"', 1))


def test_the_default_finetune_learns_who_likes_what_together_in_seconds(shop: Path, tmp_path: Path, encoder) -> None:
    ids = [i.id for i in read_items(shop / "items.csv")]
    pairs = [(ids[n], ids[n + 70]) for n in range(8)]  # a card and something unrelated in words, liked together
    rows = [(f"u{p}-{k}", item, "like", str(100 * p + 10 * k + j)) for p, pair in enumerate(pairs) for k in range(5)
            for j, item in enumerate((ids[140 - p - k], pair[k % 2], pair[1 - k % 2]))]  # each held out by some users
    rows += [(f"w{p}-{k}", item, "like", "0") for p, pair in enumerate(pairs) for k in range(5) for item in pair]  # never held out
    with_interactions(shop, rows)
    settings = Settings(home=tmp_path / "home", plugin_paths=[shop.parent])
    result = finetune(shop, settings, Options(device="cpu"), encoder=encoder)
    report = result.report
    folder = models_of(tmp_path / "home", "recommender") / "interest" / "v1"
    assert report["collab"]["lambda"] > 0 and report["run"]["steps"] == 0  # no interest encoder unless asked
    assert (folder / "collab.npy").is_file() and not (folder / "encoder").exists()
    assert result.status == "promoted" and report["heldout"]["candidate"]["ndcg@10"] == 1.0  # each held-out like found first
    rec = Agent(settings, encoder=encoder).runtimes["recommender"].extensions[RECOMMENDER].rec
    assert rec.interest.version == "v1" and rec.interest.collab.shape == (len(ids), len(ids))
    only_collab = {"request": 0.0, "collab": 1.0}
    [top] = rec.rank(Profile("new", liked=[pairs[0][0]], order=[pairs[0][0]]), None, rec.stats([]), k=1, weights=only_collab)
    assert top.item.id == pairs[0][1] and "liked by people who like what you like" in top.reasons


def test_interactions_with_unknown_items_or_users_are_left_out_and_the_rest_used(shop: Path, tmp_path: Path, encoder) -> None:
    ids = [i.id for i in read_items(shop / "items.csv")]
    with_interactions(shop, [("u1", ids[0], "like", "1"), ("u1", "gone", "like", "2"), ("", ids[1], "like", "3"),
                             ("u2", ids[2], "click", "4")])
    notes: list[str] = []
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[shop.parent]), encoder=encoder, notify=notes.append)
    rec = agent.runtimes["recommender"].extensions[RECOMMENDER].rec
    assert [e["item_id"] for e in rec.past] == [ids[0], ids[2]]
    assert any("2 row(s) left out (line 3: item 'gone' is not in the items file; line 4: no user_id)" in n and
               "the other 2 are used" in n for n in notes)
    (shop / "interactions.csv").write_text("")
    notes.clear()
    agent = Agent(Settings(home=tmp_path / "home2", plugin_paths=[shop.parent]), encoder=encoder, notify=notes.append)
    assert agent.reply("a travel card please", "c", "recommender").extra("items")  # text still recommends
    assert any("interactions.csv is empty" in n for n in notes)


def test_a_single_users_feedback_still_fine_tunes(shop: Path, tmp_path: Path, encoder) -> None:
    ids = [i.id for i in read_items(shop / "items.csv")]
    with_interactions(shop, [("only", ids[n], "like", str(n)) for n in range(6)])
    said: list[str] = []
    settings = Settings(home=tmp_path / "home", plugin_paths=[shop.parent])
    result = finetune(shop, settings, Options(device="cpu"), encoder=encoder, notify=said.append)
    assert result.version == "v1" and result.report["heldout"]["candidate"]["users"] == 1
    assert any("only one user so far" in s for s in said)
