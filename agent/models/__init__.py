"""Models and vectors: encoders, label heads, FAISS indexes and their versions; reads no log, knows no plugin.

encoder.py       the packaged sentence encoder, loaded once per process, offline
home_encoder.py  the home's shared encoder: one encoder for every plugin, one pass per turn
classifier.py    a label head over sentence embeddings
finetuned.py     a fine-tuned classifier: an optional tuned encoder plus a head
neighbours.py    nearest labelled examples, a second view of a shared head's embedding
retrieval.py     FAISS indexes with their metadata, rebuilt when stale
versions.py      `vN/` folders, the `current` pointer, history and rollback
"""
