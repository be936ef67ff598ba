"""The sentiment monitor: scores feeds and chat turns, keeps windows per topic and over all topics, raises spike alerts.

config.py  the [topics] (flat, or split into domains) and [monitor] tables of plugin.toml
feed.py    JSONL / CSV feed lines from a file or stdin (optionally followed as it grows)
scorer.py  one encoder pass per batch: label probabilities and topic (per-topic thresholds, then 'other')
trends.py  windows per topic and for 'all', an EWMA baseline and the spike test (one alert per episode)
run.py     feed -> batches -> scores -> database -> alerts
report.py  trends (all topics first, then each) and alerts as rich tables
"""
