"""Learning from examples and corrections: `agent finetune` and everything it runs.

finetune.py       `finetune()`: data, plan, train, judge against the current model, promote
versioned_run.py  what every fine-tune run shares: options, job lock, data, gate, records
shared_mode.py    mode `shared`: one encoder trained for every plugin, judged on every plugin
trainer.py        training loops: a head on frozen embeddings, LP-FT of the encoder
multitask.py      the shared encoder's training loop over every plugin's rows
trainset.py       training rows: examples plus labelled turns, cleaned and split
fewshot.py        what changes when a plugin has few examples per label
crossval.py       judging a few-shot fine-tune on every row by cross-validation
evaluate.py       accuracy, macro-F1, per-label scores, confusions, out-of-scope
report.py         the fine-tune report, JSON and Markdown
schedule.py       a plugin's `[finetune]` policy: when enough new labels wait
"""
