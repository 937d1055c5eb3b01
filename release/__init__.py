"""Releasing pushed versions safely: approval, canary and shadow traffic, and the guard that
promotes a candidate or rolls it back, each change recorded in ML Metadata.

- `states`: each version's release state and its history, in ML Metadata; `models approve` and
  `models reject`.
- `guard`: a candidate's counts judged against the stable version's.
- `controller`: inside `serve`, each turn's decisions, written to the routing file that the
  server processes follow (serving/routing.py).

It sits above `monitoring/` (the quality guard reads the request log and labels the way
`monitor` does) and `deployment/` (a rollback re-pushes the stable version), below `cli/`.
"""
