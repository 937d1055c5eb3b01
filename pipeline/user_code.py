"""Making a profile's user code importable: here, in processes started later, in Beam's workers.

A profile names its user code by dotted path (`code:` in profile.yaml); a module beside
profile.yaml is found through the profile's folder on the import path. Loading a profile does not
touch the import path: the commands that run or compile the pipeline call
`make_user_code_importable` once, where they start, before the node server starts (its processes
copy `sys.path` when it starts, orchestration/node_process.py) and before the pre-run checks import
the user code.
"""

from __future__ import annotations

import os
import sys

from pipeline.config import PipelineConfig


def make_user_code_importable(config: PipelineConfig) -> None:
    """Puts the profile's folder first on `sys.path` (this process, and the node server started
    after) and on PYTHONPATH (processes started from here, such as Beam's workers); a folder
    already on `sys.path` is left as it is."""
    code_dir = str(config.profile_dir)
    if code_dir in sys.path:
        return
    sys.path.insert(0, code_dir)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (code_dir, os.environ.get("PYTHONPATH")) if p
    )
