"""`init`'s logic: a ready-to-run profile folder (profile.yaml, a curated schema and span-1 data)
from a tabular CSV and the name of its label column; the command is cli/init_command.py.

One step a module: `init` (the flow, `init_profile`), `csv_input`, `value_types`, `task`,
`split`, `kinds`, `schema_writer`, `profile_writer`, `review` and `folder` (built beside --out,
renamed into place); `report` holds what they decide and share (InitReport, InitError, the
layout and thresholds), `text` the comment and message helpers. It imports only `components`.
"""
