"""The `agent` command line, a thin front end over the library.

main.py      the command group: ask, chat, feedback; other commands come from plugins
util.py      what the commands share: settings, the agent of an invocation, output
manage.py    plugins, indexes, logs, evaluation
finetune.py  `agent finetune`
review.py    `agent review`
replay.py    `agent replay`
serve.py     `agent serve`, `agent keys`
"""
