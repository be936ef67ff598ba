"""The sentiment monitor: scores feeds and chat turns, keeps per-topic windows, raises spike alerts.

config.py  the [topics] and [monitor] tables of plugin.toml
feed.py    JSONL / CSV feed lines from a file or stdin (optionally followed as it grows)
scorer.py  one encoder pass per batch: label probabilities and topic
trends.py  windows per topic, an EWMA baseline and the spike test (one alert per episode)
run.py     feed -> batches -> scores -> database -> alerts
report.py  per-topic trends and alerts as rich tables
"""
