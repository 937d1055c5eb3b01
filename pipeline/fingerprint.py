"""Content fingerprints of user code, so that editing code invalidates TFX's cache.

TFX's cache key covers a component's inputs and execution properties; a dotted `run_fn` path
does not change when the code behind it does. Each component that runs user code gets the hash of
that code (its module and the same-package modules it imports) in its `custom_config`.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path


def _module_file(module_name: str) -> Path:
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(f"No module named '{module_name}'")
    return Path(spec.origin)


def _imported_modules(path: Path, package: str) -> set[str]:
    """Modules of `package` that the file at `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == package:
                found.update(f"{package}.{a.name}" for a in node.names)
            elif node.module.split(".")[0] == package:
                found.add(node.module)
    return found


def code_fingerprint(function_path: str) -> str:
    """SHA-256 (first 16 hex digits) over the source of `function_path`'s module and its
    same-package imports."""
    module_name = function_path.rsplit(".", 1)[0]
    package = module_name.split(".")[0]
    pending, seen = [module_name], {}
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_file(name)
        seen[name] = path
        pending.extend(_imported_modules(path, package))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode())
        digest.update(seen[name].read_bytes())
    return digest.hexdigest()[:16]


def tuning_fingerprint(tuner_fn_path: str, search_space_path: str) -> str:
    """The Tuner's cache key: the source of `tuner_fn`'s own module and the search space it
    explores (the HyperParameters config `search_space_path` returns).

    Model-building code is deliberately left out: editing the model re-runs Trainer with the last
    best hyperparameters instead of re-tuning (re-tune on demand with `--retune`); new data re-tunes
    through the Tuner's inputs.
    """
    import importlib
    import json

    digest = hashlib.sha256(_module_file(tuner_fn_path.rsplit(".", 1)[0]).read_bytes())
    module_name, _, function_name = search_space_path.rpartition(".")
    search_space = getattr(importlib.import_module(module_name), function_name)()
    digest.update(json.dumps(search_space.get_config(), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
