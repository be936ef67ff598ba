"""The [topics] and [monitor] tables of a plugin.toml (parsed here, called from agent.plugin.manifest)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MONITOR_KEYS = {"label", "topic_column", "min_topic_similarity", "topic_coverage", "domains", "window", "alpha", "z",
                "consecutive", "min_items", "min_rise", "warmup", "clear_windows", "flag_confidence", "offer_human"}
OTHER = "other"  # the topic of an item close to none of the declared ones
ALL = "all"  # the series of every item, whatever its topic: its own windows, baseline and alerts
RESERVED = (OTHER, ALL)  # names no topic may take
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TOPIC = re.compile(r"[a-z][a-z0-9_]{0,39}")
_PLUGIN = re.compile(r"[A-Za-z0-9_-]+")


def series_name(topic: str) -> str:
    """A series as shown to people: 'all topics' for the series of every item, else the topic's name."""
    return "all topics" if topic == ALL else topic


@dataclass
class MonitorConfig:
    """How a sentiment plugin watches its label: windows, baseline, spike test, and chat flags."""

    label: str = "negative"  # the label whose share in each window is watched
    topic_column: str = "topic"  # column of the examples file naming each row's topic
    min_topic_similarity: float = 0.15  # floor under every topic's threshold; the whole of it with under 5 examples
    topic_coverage: float = 0.98  # share of a topic's own examples its calibrated threshold keeps (0: no calibration)
    domains: dict[str, str] = field(default_factory=dict)  # responder plugin -> the topic domain of the turns it answers
    window: float = 3600.0  # window length, seconds
    alpha: float = 0.1  # EWMA weight of the newest quiet window in the baseline
    z: float = 3.0  # a window is hot when the exact binomial test's p-value, as a normal quantile, reaches this
    consecutive: int = 2  # hot windows in a row that raise an alert
    min_items: int = 10  # windows with fewer items in a topic are not judged
    min_rise: float = 0.10  # and its share must exceed the baseline by at least this much
    warmup: int = 3  # judged windows that form the first baseline before any test
    clear_windows: int = 2  # quiet windows in a row that end an episode
    flag_confidence: float = 0.80  # a chat turn with the label at or above this confidence is flagged
    offer_human: bool = True  # a flagged turn's reply gets the answering plugin's hand-off line


def parse_window(value: Any) -> float:
    """'15m', '1h', '30s', '1d' or a number of seconds -> seconds; ValueError when it is neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", str(value))
        if not match:
            raise ValueError(value)
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= 366 * 86400:
        raise ValueError(value)
    return seconds


class Topics(dict):
    """Every declared topic, name -> description; `domains` maps each domain to its topic names ({} when flat)."""

    def __init__(self, descriptions: dict[str, str], domains: dict[str, list[str]] | None = None) -> None:
        super().__init__(descriptions)
        self.domains = domains or {}


def parse_topics(r: Any) -> Topics:
    """[topics] name = "description", or domains of them ([topics.bank], [topics.shop]); names unique over all."""
    value = r.get("topics", dict, {}, "a table of name = description, or of domain tables like [topics.shop]")
    nested = [k for k, v in value.items() if isinstance(v, dict)]
    if not nested:
        return Topics(_topic_table(r, value, "topics", empty=True))
    if len(nested) < len(value):
        loose = next(k for k in value if k not in nested)
        raise r.fail(f"topics.{loose}", "inside a domain table like [topics.bank], since the other topics are split into "
                     f"domains ({', '.join(nested)}); move it into one, or flatten every domain into [topics]", value[loose])
    seen: dict[str, str] = {}
    for domain in nested:
        if not _TOPIC.fullmatch(domain):
            raise r.fail(f"topics.{domain}", "a domain table whose name is lowercase letters, digits and '_'", domain)
        table = _topic_table(r, value[domain], f"topics.{domain}")
        for name in table:
            if name in seen:
                raise r.fail(f"topics.{domain}.{name}", f"a name not already used in [topics.{seen[name]}] (topic names "
                             "are unique over all domains: alerts and reports key on them); rename one", name)
            seen[name] = domain
    return Topics({k: v for d in nested for k, v in value[d].items()}, {d: list(value[d]) for d in nested})


def _topic_table(r: Any, table: dict[str, Any], where: str, empty: bool = False) -> dict[str, str]:
    """One table of name = description, each checked (a name neither 'other' nor 'all')."""
    if not table and not empty:
        raise r.fail(where, "a table with at least one topic, name = \"description\"", table)
    for name, desc in table.items():
        if not _TOPIC.fullmatch(name) or name in RESERVED:
            reserved = f"'{OTHER}' is where items close to no topic go and '{ALL}' is the series of every item"
            raise r.fail(f"{where}.{name}", f"a lowercase name of letters, digits and '_' (not '{OTHER}' or '{ALL}': "
                         f"{reserved}); rename the topic", name)
        if not isinstance(desc, str) or not desc.strip():
            raise r.fail(f"{where}.{name}", "a non-empty description string", desc)
    return dict(table)


def parse_monitor(r: Any, labels: dict[str, str], topics: Topics | None = None) -> MonitorConfig | None:
    """[monitor]: each key checked for type and range; `label` must be one of the plugin's labels."""
    t = r.sub("monitor", MONITOR_KEYS)
    if t is None:
        return None
    c = MonitorConfig()
    c.label = t.get("label", str, c.label, "a label name")
    if labels and c.label not in labels:
        raise t.fail("label", f"one of the plugin's labels {sorted(labels)}", c.label)
    c.topic_column = t.get("topic_column", str, c.topic_column, "a column name")
    for key in ("min_topic_similarity", "topic_coverage", "alpha", "min_rise", "flag_confidence"):
        value = t.get(key, float, getattr(c, key), "a number from 0 to 1")
        if not 0.0 <= value <= 1.0 or key == "alpha" and value == 0.0:
            raise t.fail(key, "a number from 0 to 1" + (" (above 0)" if key == "alpha" else ""), value)
        setattr(c, key, value)
    c.z = t.get("z", float, c.z, "a number from 0.5 to 10")
    if not 0.5 <= c.z <= 10:
        raise t.fail("z", "a number from 0.5 to 10", c.z)
    for key, high in (("consecutive", 20), ("min_items", 100_000), ("warmup", 1000), ("clear_windows", 100)):
        value = t.get(key, int, getattr(c, key), f"a whole number from 1 to {high}")
        if not 1 <= value <= high:
            raise t.fail(key, f"a whole number from 1 to {high}", value)
        setattr(c, key, value)
    raw = t.get("window", (str, int, float), "1h", "a length like '15m', '1h', '1d' or seconds")
    try:
        c.window = parse_window(raw)
    except ValueError:
        raise t.fail("window", "a length like '30s', '15m', '1h', '1d' (1 s to 366 days)", raw) from None
    c.offer_human = t.get("offer_human", bool, c.offer_human, "true or false")
    c.domains = parse_domains(t, topics or Topics({}))
    return c


def parse_domains(t: Any, topics: Topics) -> dict[str, str]:
    """`domains = {order_tracking = "shop", ...}`: each responder plugin's turns are filed under its domain's topics."""
    value = t.get("domains", dict, {}, 'a table of plugin = "domain", like { order_tracking = "shop" }')
    if value and not topics.domains:
        raise t.fail("domains", "used with topics split into domains, like [topics.bank] and [topics.shop]; declare them "
                     "or delete this key", value)
    for plugin, domain in value.items():
        if not _PLUGIN.fullmatch(plugin):
            raise t.fail(f"domains.{plugin}", "keyed by a plugin name (letters, digits, '_' or '-')", plugin)
        if not isinstance(domain, str) or domain not in topics.domains:
            raise t.fail(f"domains.{plugin}", f"one of the domains declared in [topics]: {', '.join(topics.domains)}", domain)
    return dict(value)
