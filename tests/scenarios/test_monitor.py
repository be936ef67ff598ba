"""The monitor's parts without a model: the spike test, windows, feed parsing and following, [monitor] settings."""

from __future__ import annotations

import io
import random
import threading
import time
from pathlib import Path

import pytest

from agent.errors import PluginError
from agent.plugin.manifest import load_manifest
from agent.scenarios.monitor.config import MonitorConfig, parse_window
from agent.scenarios.monitor.feed import MAX_LINE_BYTES, BadLine, FeedError, FeedItem, Parser, parse_time, raw_lines
from agent.scenarios.monitor.trends import SpikeDetector, Window, Windower
from conftest import REPO


def stream(detector: SpikeDetector, shares: list[float], n: int = 40, seed: int = 0, topic: str = "app") -> list[int]:
    """Judge one window per share (items drawn at that share); the indexes of windows that raised an alert."""
    rng, fired = random.Random(seed), []
    for i, p in enumerate(shares):
        hits = sum(rng.random() < p for _ in range(n))
        if detector.judge(Window(topic, i * 3600.0, (i + 1) * 3600.0, n, hits)):
            fired.append(i)
    return fired


def test_noise_alone_raises_almost_no_alerts() -> None:
    fired = stream(SpikeDetector(MonitorConfig()), [0.2] * 3000, seed=1)
    assert len(fired) <= 2, fired


def test_an_injected_spike_raises_one_alert_within_one_window() -> None:
    shares = [0.2] * 50 + [0.6] * 6 + [0.2] * 50
    fired = stream(SpikeDetector(MonitorConfig()), shares, seed=2)
    assert fired == [51]  # the spike starts at window 50; two hot windows in a row fire at 51


def test_one_alert_per_episode_and_a_new_episode_after_it_clears() -> None:
    shares = [0.15] * 30 + [0.7] * 20 + [0.15] * 20 + [0.7] * 5 + [0.15] * 10
    fired = stream(SpikeDetector(MonitorConfig()), shares, seed=3)
    assert fired == [31, 71]


def test_a_single_hot_window_does_not_alert_nor_move_the_baseline() -> None:
    d = SpikeDetector(MonitorConfig())
    for i in range(5):
        d.judge(Window("app", i, i + 1, 50, 10))
    before = d.topics["app"].baseline
    w = Window("app", 5, 6, 50, 35)
    assert d.judge(w) is False and w.state == "hot"
    assert d.topics["app"].baseline == before
    assert d.judge(Window("app", 6, 7, 50, 10)) is False


def test_thin_windows_are_not_judged() -> None:
    d = SpikeDetector(MonitorConfig(min_items=10))
    for i in range(5):
        d.judge(Window("app", i, i + 1, 50, 10))
    for i in range(5, 10):
        w = Window("app", i, i + 1, 5, 5)
        assert d.judge(w) is False and w.state == "thin"


def test_topics_are_judged_apart() -> None:
    d = SpikeDetector(MonitorConfig())
    assert stream(d, [0.1] * 20 + [0.8] * 3, topic="fees") == [21]
    assert stream(d, [0.1] * 23, topic="cards") == []


def test_windower_closes_windows_when_a_later_item_arrives() -> None:
    w = Windower(60)
    assert list(w.add(0, "app", True)) == []
    assert list(w.add(30, "fees", False)) == []
    closed = list(w.add(61, "app", False))
    assert [(x.topic, x.n, x.hits, x.start) for x in closed] == [("app", 1, 1, 0.0), ("fees", 1, 0, 0.0)]
    assert list(w.add(10, "app", True)) == [] and w.late == 1  # a late item counts in the current window
    assert [(x.topic, x.n, x.hits) for x in w.flush()] == [("app", 2, 1)]


def parse_all(fmt: str, data: bytes, topics: set[str] | None = None) -> list[FeedItem | BadLine]:
    """Every parsed line of a feed held in memory."""
    parser = Parser(fmt, "feed", 5000, topics, clock=lambda: 123.0)
    out = [parser.parse(n, raw) for n, raw in raw_lines(io.BytesIO(data))]
    return [x for x in out if x is not None]


def test_jsonl_bad_lines_are_reported_with_their_numbers() -> None:
    data = (b'{"text": "good one", "timestamp": "2026-11-23T10:00:00Z", "source": "x"}\n'
            b'not json\n'
            b'\n'
            b'[1, 2]\n'
            b'{"text": 5}\n'
            b'{"text": "  "}\n'
            b'{"text": "bad time", "timestamp": "soon"}\n'
            b'{"text": "\xff\xfe broken"}\n'
            b'{"text": "unknown topic", "topic": "weather"}\n'
            b'{"text": "no newline at the end", "ts": 1700000000000}')
    out = parse_all("jsonl", data, {"app", "fees"})
    good = [x for x in out if isinstance(x, FeedItem)]
    bad = {x.line: x.reason for x in out if isinstance(x, BadLine)}
    assert [(g.line, g.text, g.source) for g in good] == [(1, "good one", "x"), (10, "no newline at the end", "feed")]
    assert good[0].timestamp == 1795428000.0 and good[1].timestamp == 1700000000.0
    assert sorted(bad) == [2, 4, 5, 6, 7, 8, 9]
    assert "JSON" in bad[2] and "object" in bad[4] and "string" in bad[5] and "empty" in bad[6]
    assert "ISO 8601" in bad[7] and "UTF-8" in bad[8] and "weather" in bad[9] and "app, fees" in bad[9]


def test_csv_feed_with_header_and_a_broken_row() -> None:
    data = b'text,timestamp,source\n"fees up again, awful",2026-11-23T10:00:00,forum\nonly,two\nfine thanks,1795428000,\n'
    out = parse_all("csv", data)
    assert [(x.line, x.text, x.source) for x in out if isinstance(x, FeedItem)] == [
        (2, "fees up again, awful", "forum"), (4, "fine thanks", "feed")]
    assert [(x.line, "2 fields" in x.reason) for x in out if isinstance(x, BadLine)] == [(3, True)]


def test_csv_without_a_text_column_is_refused_with_the_fix() -> None:
    with pytest.raises(FeedError, match=r"feed:1: .*no 'text' column.*text,timestamp"):
        parse_all("csv", b"message,when\nhello,1\n")


def test_an_over_long_line_is_skipped_without_holding_it() -> None:
    data = b'{"text": "a"}\n' + b"x" * (MAX_LINE_BYTES + 10) + b'\n{"text": "after"}\n'
    out = parse_all("jsonl", data)
    assert [(x.line, type(x).__name__) for x in out] == [(1, "FeedItem"), (2, "BadLine"), (3, "FeedItem")]


def test_missing_timestamp_means_the_time_it_was_read() -> None:
    (item,) = parse_all("jsonl", b'{"text": "hello there"}\n')
    assert item.timestamp == 123.0


@pytest.mark.parametrize("value,expected", [("2026-11-23T10:00:00Z", 1795428000.0), ("2026-11-23T11:00:00+01:00", 1795428000.0),
                                            ("2026-11-23 10:00:00", 1795428000.0), (1795428000, 1795428000.0),
                                            ("1795428000.5", 1795428000.5), (1795428000000, 1795428000.0)])
def test_timestamps(value: object, expected: float) -> None:
    assert parse_time(value, "timestamp") == expected


def test_following_a_growing_file_holds_a_half_written_line(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b'{"text": "one"}\n{"text": "tw')

    def grow() -> None:
        time.sleep(0.5)
        with open(path, "ab") as fh:
            fh.write(b'o"}\n{"text": "three"}\n')

    threading.Thread(target=grow).start()
    with open(path, "rb") as fh:
        lines = list(raw_lines(fh, follow=True, idle_exit=1.5))
    assert lines == [(1, b'{"text": "one"}\n'), (2, b'{"text": "two"}\n'), (3, b'{"text": "three"}\n')]


@pytest.mark.parametrize("value,seconds", [("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800), (90, 90), ("1.5h", 5400)])
def test_window_lengths(value: object, seconds: float) -> None:
    assert parse_window(value) == seconds


@pytest.mark.parametrize("table,message", [
    ('[monitor]\nwindow = "5x"\n', "monitor.window"),
    ('[monitor]\nlabel = "angry"\n', "monitor.label.*one of the plugin's labels"),
    ('[monitor]\nz = 100\n', "monitor.z"),
    ('[monitor]\nconsecutive = 0\n', "monitor.consecutive"),
    ('[monitor]\nwindw = "1h"\n', "did you mean 'window'"),
    ('[topics]\nOther = "x"\n', "topics.Other"),
    ('[topics]\ncards = 3\n', "topics.cards"),
    ('[topics]\nall = "every item"\n', "key 'topics.all' must be .*not 'other' or 'all'"),
    ('[topics]\ncards = "x"\n[topics.shop]\ndelivery = "y"\n', r"key 'topics.cards' must be inside a domain table.*\(shop\)"),
    ('[topics.bank]\ncards = "x"\n[topics.shop]\ncards = "y"\n', r"key 'topics.shop.cards' must be a name not already used in \[topics.bank\]"),
    ('[topics.bank]\ncards = "x"\n[topics.shop]\n', "key 'topics.shop' must be a table with at least one topic"),
    ('[topics.bank]\nall = "x"\n', "key 'topics.bank.all'"),
    ('[topics.bank]\ncards = "x"\n[monitor]\ndomains = { order_tracking = "shop" }\n',
     "key 'monitor.domains.order_tracking' must be one of the domains declared in \\[topics\\]: bank"),
    ('[topics]\ncards = "x"\n[monitor]\ndomains = { order_tracking = "bank" }\n', "key 'monitor.domains' must be used with topics split"),
    ('[topics.bank]\ncards = "x"\n[monitor]\ndomains = { "a b" = "bank" }\n', "key 'monitor.domains.a b' must be keyed by a plugin name"),
    ('[monitor]\ntopic_coverage = 1.5\n', "monitor.topic_coverage"),
])
def test_bad_monitor_settings_name_the_key(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "plugin.toml").write_text('name = "s"\ndescription = "d"\nrole = "observer"\n'
                                          'labels = ["positive", "neutral", "negative"]\n' + table)
    with pytest.raises(PluginError, match=message):
        load_manifest(tmp_path)


def test_the_bundled_plugin_declares_topics_and_a_monitor() -> None:
    m = load_manifest(REPO / "plugins" / "sentiment_monitor")
    assert m.role == "observer" and set(m.labels) == {"positive", "neutral", "negative"}
    assert len(m.tables["topics"]) >= 6 and m.tables["monitor"] is not None and m.tables["monitor"].label == "negative"
    topics, config = m.tables["topics"], m.tables["monitor"]
    assert "cards" in topics.domains["bank"] and "delivery" in topics.domains["shop"]
    assert config.domains == {"customer_service": "bank", "order_tracking": "shop"} and 0.5 < config.topic_coverage <= 1


def test_a_flat_topics_table_and_domain_tables_give_the_same_topics(tmp_path: Path) -> None:
    head = 'name = "s"\ndescription = "d"\nrole = "observer"\nlabels = ["positive", "neutral", "negative"]\n'
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "plugin.toml").write_text(head + '[topics]\ncards = "Cards"\ndelivery = "Parcels"\n')
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "plugin.toml").write_text(head + '[topics.bank]\ncards = "Cards"\n[topics.shop]\ndelivery = "Parcels"\n'
                                                    '[monitor]\ndomains = { order_tracking = "shop" }\n')
    flat, split = (load_manifest(tmp_path / name) for name in ("flat", "split"))
    assert dict(flat.tables["topics"]) == dict(split.tables["topics"]) == {"cards": "Cards", "delivery": "Parcels"}
    assert flat.tables["topics"].domains == {} and split.tables["topics"].domains == {"bank": ["cards"], "shop": ["delivery"]}
    assert flat.tables["monitor"] is None and split.tables["monitor"].domains == {"order_tracking": "shop"}


def unit(*weights: float) -> list[float]:
    """A unit vector in as many dimensions as weights."""
    norm = sum(w * w for w in weights) ** 0.5
    return [w / norm for w in weights]


def test_topics_are_assigned_within_the_domain_of_each_item_and_below_threshold_go_to_other() -> None:
    import numpy as np

    from agent.scenarios.monitor.scorer import TopicIndex

    index = TopicIndex(["cards", "fees", "delivery"], np.eye(3, dtype=np.float32), [0.6, 0.6, 0.7],
                       {"bank": ["cards", "fees"], "shop": ["delivery"]})
    near_delivery, near_cards = unit(0.3, 0.0, 1.0), unit(1.0, 0.2, 0.4)
    rows = np.array([near_delivery, near_delivery, near_delivery, near_cards, near_cards, unit(1.0, 1.0, 1.0)], dtype=np.float32)
    got = [t for t, _ in index.assign(rows, [None, "bank", "shop", "shop", "elsewhere", None])]
    assert got == ["delivery", "other", "delivery", "other", "cards", "other"]
    assert [t for t, _ in index.assign(rows[:1])] == ["delivery"]  # no domains given: all topics


def test_calibrated_thresholds_follow_how_close_a_topics_own_examples_are() -> None:
    import numpy as np

    from agent.scenarios.monitor.scorer import calibrate

    rng = np.random.default_rng(0)

    def examples(spread: float, n: int = 20) -> np.ndarray:
        v = np.eye(8)[0] + spread * rng.standard_normal((n, 8))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    tight, loose = calibrate(examples(0.1), 0.15, 0.98), calibrate(examples(0.6), 0.15, 0.98)
    assert 0.8 < tight < 1.0 and 0.15 <= loose < tight - 0.3
    assert calibrate(examples(0.6), 0.15, 0.5) > loose  # a lower coverage keeps fewer examples: a higher threshold
    assert calibrate(examples(3.0), 0.15, 0.98) == 0.15  # never below the floor
    assert calibrate(examples(0.1, n=5), 0.15, 0.98) == 0.15  # the description and 4 examples: too few to calibrate
    assert calibrate(examples(0.1), 0.15, 0.0) == 0.15  # calibration off


def test_the_windower_keeps_a_total_series_first() -> None:
    w = Windower(60, total="all")
    for stamp, topic, hit in [(0, "fees", True), (10, "app", False), (20, "fees", True), (70, "app", True)]:
        closed = list(w.add(stamp, topic, hit))
    assert [(x.topic, x.n, x.hits) for x in closed] == [("all", 3, 2), ("app", 1, 0), ("fees", 2, 2)]
    assert [(x.topic, x.n, x.hits) for x in w.flush()] == [("all", 1, 1), ("app", 1, 1)]


def test_a_feed_cannot_name_the_all_topics_series() -> None:
    for topics in (None, {"app", "other"}):
        (bad,) = parse_all("jsonl", b'{"text": "fees up", "topic": "all"}\n', topics)
        assert isinstance(bad, BadLine) and "series of every item" in bad.reason


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                          st.dictionaries(st.sampled_from(["text", "timestamp", "topic", "source", "ts"]),
                                          st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=40)),
                                          max_size=5).map(lambda d: __import__("json").dumps(d).encode())),
                max_size=20),
       st.sampled_from(["jsonl", "csv"]))
def test_any_bytes_give_items_or_bad_lines_never_a_crash(lines: list[bytes], fmt: str) -> None:
    data = b"\n".join(([b"text,timestamp,topic"] if fmt == "csv" else []) + lines)
    for x in parse_all(fmt, data, {"app", "fees"}):
        assert isinstance(x, (FeedItem, BadLine))
        if isinstance(x, FeedItem):
            assert x.text.strip() and x.timestamp == x.timestamp and (x.topic is None or x.topic in {"app", "fees"})


def test_bom_crlf_emoji_and_odd_values() -> None:
    data = (b'\xef\xbb\xbftext,timestamp,source\r\n'
            b'"fees up, again",1795428000,"forum\x1b[31m"\r\n'
            b'\xf0\x9f\x98\xa1\xf0\x9f\x98\xa1,1795428000,\r\n'
            b'"a quoted text that goes on\r\n'
            b'to the next line",1795428000,x\r\n')
    out = parse_all("csv", data)
    good = [(x.line, x.text, x.source) for x in out if isinstance(x, FeedItem)]
    assert good == [(2, "fees up, again", "forum [31m"), (3, "\U0001F621\U0001F621", "feed")]
    assert [(x.line, "quoted field" in x.reason) for x in out if isinstance(x, BadLine)] == [(4, True), (5, True)]
    lines = [b'{"text": "a", "timestamp": ' + b"1" * 400 + b"}", b'{"text": "b", "timestamp": -5}',
             b'{"text": "c", "timestamp": 5e15}', b'{"text": "d", "source": "x\\udc00y"}', b'{"text": "e", "ts": 940000000000}']
    out = parse_all("jsonl", b"\n".join(lines))
    assert [x.line for x in out if isinstance(x, BadLine)] == [1, 2, 3]
    assert [(x.source, x.timestamp) for x in out if isinstance(x, FeedItem)] == [("x?y", 123.0), ("feed", 940000000.0)]


def test_a_truncated_followed_file_starts_over_with_its_header(tmp_path: Path) -> None:
    import threading as th

    from agent.scenarios.monitor.run import read_feed

    path = tmp_path / "feed.csv"
    path.write_bytes(b"text,source\nfirst one,a\nsecond one,a\n")

    def rotate() -> None:
        time.sleep(0.6)
        path.write_bytes(b"text,source\nafter rotation,b\n")

    th.Thread(target=rotate).start()
    with open(path, "rb") as fh:
        out = list(read_feed(fh, path, "auto", 5000, None, True, 1.5, th.Event()))
    assert [(x.text, x.source) for x in out] == [("first one", "a"), ("second one", "a"), ("after rotation", "b")]


def test_hot_windows_apart_in_time_are_not_in_a_row() -> None:
    d = SpikeDetector(MonitorConfig())
    for i in range(5):
        d.judge(Window("app", i, i + 1, 50, 10))
    assert d.judge(Window("app", 5, 6, 50, 35)) is False
    assert d.judge(Window("app", 9, 10, 50, 35)) is False  # a gap of three windows: the count starts again
    assert d.judge(Window("app", 10, 11, 5, 5)) is False  # thin
    assert d.judge(Window("app", 11, 12, 50, 35)) is False
    assert d.judge(Window("app", 12, 13, 50, 35)) is True


def test_a_lasting_shift_becomes_the_new_normal_and_can_alert_again() -> None:
    fired = stream(SpikeDetector(MonitorConfig()), [0.1] * 20 + [0.5] * 60 + [0.9] * 4, seed=4)
    assert fired[0] == 21 and len(fired) == 2 and 80 <= fired[1] <= 81


def test_batches_hand_over_what_was_read_before_an_error() -> None:
    from agent.scenarios.monitor.run import batches

    def items():  # type: ignore[no-untyped-def]
        yield FeedItem(1, "a", 0.0, "x")
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for batch in batches(items(), threading.Event(), size=10, wait=5):
            got.append(batch)
    assert [[x.text for x in b] for b in got] == [["a"]]
