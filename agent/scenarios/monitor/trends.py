"""Windows per topic, an EWMA baseline of the watched label's share, and the spike test.

Besides the topics, the monitor keeps the series `all` of every item: a rise spread over many
topics, each too thin to judge or too small to pass the test on its own, shows there.

The method, per topic (and for `all`, just the same):
  * Items fall into fixed windows of `window` seconds (by their timestamp). A window is judged
    when a later item shows that it is over (or at the end of a feed), if it holds `min_items`.
  * The baseline is the pooled share of the first `warmup` judged windows, then an EWMA
    (weight `alpha`) of the calm windows only (z < z/2): a spike, even one too weak to alert
    on, and an episode never raise it.
  * A window is hot when its share is at least `min_rise` above the baseline and significantly so:
    a one-sided exact binomial test of its count of the label among its n items against the
    baseline share p0 (kept within [0.01, 0.99]); its p-value, written as a normal quantile z,
    must reach `z` (z = 3 is p <= 0.00135). Exact, because windows are often small and p0 low.
  * `consecutive` hot windows in a row raise one alert and open an episode; windows in a row means
    adjacent in time: a gap, or a window too thin to judge, starts the count again. The episode ends
    after `clear_windows` windows in a row with z < z/2; until then no other alert is raised for the
    topic. An episode that lasts NEW_NORMAL judged windows ends as the new normal: the baseline
    becomes the share over those windows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Iterator

from agent.scenarios.monitor.config import MonitorConfig

NEW_NORMAL = 24  # judged windows after which a lasting episode becomes the baseline


@dataclass
class Window:
    """One closed window of one topic, with what the test made of it."""

    topic: str
    start: float  # epoch seconds
    end: float
    n: int
    hits: int  # items with the watched label
    baseline: float | None = None
    z: float | None = None
    state: str = "warmup"  # warmup, quiet, hot, alert, episode, cleared, new normal, thin (too few items)

    @property
    def share(self) -> float:
        """The watched label's share of the window's items."""
        return self.hits / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON- and database-ready form."""
        return {**asdict(self), "share": round(self.share, 4)}


@dataclass
class _Topic:
    """The running state of one topic's test."""

    warm: list[Window] = field(default_factory=list)
    baseline: float | None = None
    run: int = 0  # hot windows in a row
    episode: bool = False
    quiet: int = 0  # quiet windows in a row during an episode
    last_end: float | None = None  # end of the latest window seen, to tell adjacent windows from a gap
    during: list[Window] = field(default_factory=list)  # the current episode's judged windows


class SpikeDetector:
    """Judges each topic's closed windows; `judge` says whether one raises an alert."""

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.topics: dict[str, _Topic] = {}

    def judge(self, w: Window) -> bool:
        """Fill in the window's baseline, z and state; True when it raises an alert."""
        c, t = self.config, self.topics.setdefault(w.topic, _Topic())
        if t.last_end is not None and w.start > t.last_end:
            t.run = 0  # a gap: the windows before it are not "in a row" with this one
        t.last_end = w.end
        if w.n < c.min_items:
            w.state, w.baseline, t.run = "thin", t.baseline, 0
            return False
        if t.baseline is None:
            t.warm.append(w)
            if len(t.warm) >= c.warmup:
                t.baseline = sum(x.hits for x in t.warm) / sum(x.n for x in t.warm)
            return False
        w.baseline, w.z = round(t.baseline, 4), round(self.zscore(w.share, t.baseline, w.n), 3)
        hot = w.z >= c.z and w.share - t.baseline >= c.min_rise
        if t.episode:
            t.during.append(w)
            t.quiet = t.quiet + 1 if w.z < c.z / 2 else 0
            t.episode = t.quiet < c.clear_windows
            w.state = "episode" if t.episode else "cleared"
            if t.episode and len(t.during) >= NEW_NORMAL:
                t.baseline = sum(x.hits for x in t.during) / sum(x.n for x in t.during)
                t.episode, w.state = False, "new normal"
            t.run = 0
            return False
        if not hot:
            t.run, w.state = 0, "quiet"
            if w.z < c.z / 2:
                t.baseline = (1 - c.alpha) * t.baseline + c.alpha * w.share
            return False
        t.run += 1
        if t.run < c.consecutive:
            w.state = "hot"
            return False
        t.episode, t.quiet, t.run, t.during, w.state = True, 0, 0, [], "alert"
        return True

    @staticmethod
    def zscore(share: float, baseline: float, n: int) -> float:
        """The exact one-sided binomial p-value of the window's count, as a normal quantile (capped at 30)."""
        p0 = min(max(baseline, 0.01), 0.99)
        p_value = binom_sf(round(share * n), n, p0)
        return min(30.0, -NormalDist().inv_cdf(min(max(p_value, 1e-300), 1 - 1e-16)))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space over the smaller tail until its terms vanish."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    upper = k > n * p  # the upper tail from k falls away from its first term; else sum the lower tail to k - 1
    terms = range(k, n + 1) if upper else range(k - 1, -1, -1)
    logs: list[float] = []
    for i in terms:
        logs.append(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p))
        if len(logs) > 1 and logs[-1] < max(logs[0], logs[-2]) - 40:
            break
    top = max(logs)
    tail = min(1.0, math.exp(top) * sum(math.exp(x - top) for x in logs))
    return tail if upper else max(0.0, 1.0 - tail)


class Windower:
    """Counts items per topic in the current window (and every item under `total`, when given); yields the
    windows a newer item closes."""

    def __init__(self, seconds: float, total: str | None = None) -> None:
        self.seconds, self.total = seconds, total
        self.index: int | None = None
        self.counts: dict[str, list[int]] = {}  # topic -> [n, hits]
        self.late = 0  # items older than the current window, counted in it

    def add(self, timestamp: float, topic: str, hit: bool) -> Iterator[Window]:
        """Count one item; first yield the windows it closes (the total's, then every topic's in name order)."""
        index = int(timestamp // self.seconds)
        if self.index is None:
            self.index = index
        elif index > self.index:
            yield from self.flush()
            self.index = index
        elif index < self.index:
            self.late += 1
        for series in (topic, self.total) if self.total is not None else (topic,):
            n_hits = self.counts.setdefault(series, [0, 0])
            n_hits[0] += 1
            n_hits[1] += int(hit)

    def flush(self) -> Iterator[Window]:
        """Close the current window (at the end of a feed, or when a newer item arrives): the total first."""
        if self.index is None:
            return
        start = self.index * self.seconds
        for topic in sorted(self.counts, key=lambda t: (t != self.total, t)):
            n, hits = self.counts[topic]
            yield Window(topic, start, start + self.seconds, n, hits)
        self.counts = {}
