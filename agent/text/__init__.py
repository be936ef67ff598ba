"""Text in and out, before any model sees it; imports no other package of the agent.

guard.py      incoming text: decode, normalise, refuse, redact what must not be stored
pii.py        personal numbers in text (e-mails, IBANs, cards, IDs, phones) and how to mask them
spelling.py   emoji and pictographs spelt out in words before tokenising
noise.py      typo and casing noise for training and evaluation
scrub.py      re-redact what is already stored (`agent logs redact`)
"""
