"""Scale-out: workers and gateways coordinated through Redis (see ``docs/scaling.md``).

- :mod:`.registry` — the Redis layout, the atomic slot reservation (a Lua script), conversation
  snapshots; the pure parts (keys, ids, snapshot trimming) are sans-I/O.
- :mod:`.worker` — ``realtalk worker``: serves sessions, heartbeats, drains on SIGTERM, stores
  each session's conversation after every turn and resumes stored ones.
- :mod:`.gateway` — ``realtalk gateway``: the page and ``/api/offer``, dispatch to the
  least-loaded live worker.
- :mod:`.local` — ``realtalk run AGENT --workers N``: Redis, N workers and a gateway on one machine.
"""

from __future__ import annotations

__all__: list[str] = []
