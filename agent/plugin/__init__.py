"""Plugins: the hooks they implement, how they are found and read, and one plugin loaded for answering.

hookspecs.py      the hooks a plugin may implement, and the order a turn calls them
manager.py        the pluggy manager: the default plugins, then folders and packages
hooks.py          calling one plugin's hooks so that its failure stays its own
discovery.py      folders with a plugin.toml, then installed packages
manifest.py       plugin.toml -> Manifest, validated
data.py           CSV and JSONL readers with errors that name file and line
contributions.py  what plugins add through `register_*`: tables, migrations, fine-tuners, commands
loaded.py         a loaded plugin: its examples, indexes, classifier and decisions
thresholds.py     a confidence threshold a person accepted from a fine-tune
inventory.py      what `agent plugins` shows, from files alone
scaffold.py       new plugin folders (`agent new-plugin`)
templates.py      the files a new plugin starts with
"""
