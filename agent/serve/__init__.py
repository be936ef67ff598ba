"""The agent as a service (`agent serve`): an HTTP API, Rasa's REST channel, keys, limits and metrics.

- app.py       create_app(settings, options): routers, JSON errors, middleware; serve() runs it on uvicorn
- worker.py    the inference thread that owns the Agent: micro-batches, arrival order, other work between batches
- routes.py    /v1 (messages, feedback, conversations, plugins), /healthz, /readyz, /metrics
- rasa.py      POST /webhooks/rest/webhook, Rasa's REST channel, over the same reply path
- page.py      the web chat page at / (static/: HTML, CSS, JS) under a Content-Security-Policy
- jobs.py      fine-tunes started over HTTP, on threads of their own; promoted versions swap in between batches
- schemas.py   the pydantic bodies: the OpenAPI document is the contract
- security.py  keys and scopes as a dependency, the rate limit, the body cap, the loopback rule
- ids.py       conversation and user ids that hold a personal number stored as a keyed hash
- keys.py      making, listing, checking and revoking keys (hashes in the home's database)
- metrics.py   Prometheus counters and histograms of one app
"""
