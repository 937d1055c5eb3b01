"""What a run depends on besides its data, recorded with the run and compared with what is here now.

A run records, on its context in ML Metadata (orchestration/local_runner.py), one JSON document:
the project's git commit and a hash of its uncommitted changes (or "not a git checkout"), the
content hash of every source file that can change what the pipeline does (the project's code,
profiles and schemas, and the profile folder's own files), the hash of `requirements.lock`,
Python's and the ML libraries' versions, the profile as parsed, the effective settings and the
seeds. The data each span read is recorded by the ExampleGens on their Examples
(components/span_example_gen/data_files.py). `differences()` lists what differs between a
record and now, one sentence each: what `reproduce` refuses and `inspect diff` shows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from components import profile as profiles
from components.data_files import sha256_and_size
from pipeline.config import PROFILE_SETTINGS, PROJECT_ROOT, PipelineConfig, profile_settings

FORMAT_VERSION = 1
# The hash seed of every component process of a deterministic run (cli/run_commands.py).
PYTHON_HASH_SEED = 0
LOCK_FILE = PROJECT_ROOT / "requirements.lock"
# The distributions whose versions can change what a run computes.
LIBRARIES = (
    "tensorflow",
    "tfx",
    "apache-beam",
    "tensorflow-model-analysis",
    "tensorflow-data-validation",
    "tensorflow-transform",
    "tfx-bsl",
    "ml-metadata",
    "keras",
    "keras-tuner",
    "numpy",
    "pyarrow",
    "scikit-learn",
)
# Files that can change what a run does: code, profiles, schemas, settings files. Data is recorded
# per span by the ExampleGens; documentation, tests and the benchmark harness are left out.
SOURCE_SUFFIXES = frozenset({".py", ".yaml", ".yml", ".pbtxt", ".toml", ".j2"})
NOT_SOURCE_FOLDERS = ("tests", "bench", "outputs", "test-artifacts", ".venv")
# Settings that say where a run writes, not what it computes: a replay writes elsewhere.
LOCATION_SETTINGS = frozenset(
    {"output_dir", "metadata", "pipeline_root_uri", "serving_model_uri", "enable_cache"}
)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), *args],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode(errors="replace") if done.returncode == 0 else None


def _project_files() -> list[Path]:
    """The project's files: what git tracks plus untracked files it does not ignore, else every
    file under the project folder."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed is not None:
        return [PROJECT_ROOT / name for name in listed.split("\0") if name]
    files = []
    for folder, subfolders, names in os.walk(PROJECT_ROOT):
        top = Path(folder) == PROJECT_ROOT
        subfolders[:] = [
            d for d in subfolders if not d.startswith(".") and not (top and d in NOT_SOURCE_FOLDERS)
        ]
        files.extend(Path(folder) / name for name in names)
    return files


def _is_source(path: Path, skipped: Iterable[Path]) -> bool:
    if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
        return False
    if "__pycache__" in path.parts:
        return False
    if any(path.is_relative_to(folder) for folder in skipped):
        return False
    if path.is_relative_to(PROJECT_ROOT):
        first = path.relative_to(PROJECT_ROOT).parts[0]
        return first not in NOT_SOURCE_FOLDERS
    return True


def display_path(path: Path) -> str:
    """A path as records show it: relative to the project when inside it."""
    return (
        path.relative_to(PROJECT_ROOT).as_posix()
        if path.is_relative_to(PROJECT_ROOT)
        else str(path)
    )


def source_files(config: PipelineConfig) -> dict[str, str]:
    """Path -> SHA-256 of every source file of the project and of the profile's folder (its own
    user code and schema), data folders and profile.yaml left out (recorded on their own)."""
    profile_yaml = profiles.profile_file(config.profile_dir).resolve()
    # The data (hashed by the ExampleGens) and the run's own outputs, wherever they are.
    skipped = [config.data_dir.resolve(), PROJECT_ROOT / "data", config.output_dir.resolve()]
    candidates = set(_project_files())
    if not config.profile_dir.resolve().is_relative_to(PROJECT_ROOT):
        candidates.update(p for p in config.profile_dir.resolve().rglob("*") if p.is_file())
    candidates.add(config.curated_schema_file.resolve())
    return {
        display_path(path): sha256_and_size(path)[0]
        for path in sorted(p.resolve() for p in candidates)
        if path != profile_yaml and _is_source(path, skipped)
    }


def _git_record() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "uncommitted_changes": None, "note": "not a git checkout"}
    diff = _git("diff", "HEAD", "--binary") or ""
    untracked = (_git("ls-files", "-z", "--others", "--exclude-standard") or "").split("\0")
    digest = hashlib.sha256(diff.encode())
    for name in sorted(n for n in untracked if n):
        path = PROJECT_ROOT / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    dirty = bool(diff or any(untracked))
    return {
        "commit": commit.strip(),
        "uncommitted_changes": digest.hexdigest()[:16] if dirty else None,
    }


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def settings_of(config: PipelineConfig) -> dict[str, Any]:
    """The effective settings that decide what a run computes, as JSON values (the profile is
    recorded on its own; where the run writes is not a setting a replay repeats)."""
    return {
        field.name: _jsonable(getattr(config, field.name))
        for field in dataclasses.fields(config)
        if field.name != "profile" and field.name not in LOCATION_SETTINGS
    }


def profile_overrides(config: PipelineConfig) -> list[str]:
    """The settings a profile gives that `config` has from elsewhere."""
    from_profile = profile_settings(config.profile_dir, config.profile)
    return sorted(
        name
        for name in PROFILE_SETTINGS
        if name != "profile" and _jsonable(getattr(config, name)) != _jsonable(from_profile[name])
    )


def capture(config: PipelineConfig) -> dict[str, Any]:
    """What a run of `config` depends on, besides its data, as it is here now."""
    profile_path = profiles.profile_file(config.profile_dir).resolve()
    return {
        "format": FORMAT_VERSION,
        "git": _git_record(),
        "source_files": source_files(config),
        "lock": {
            "path": display_path(LOCK_FILE),
            "sha256": sha256_and_size(LOCK_FILE)[0] if LOCK_FILE.is_file() else None,
        },
        "versions": _versions(),
        "platform": {"machine": platform.machine(), "system": platform.system()},
        "profile": {
            "path": str(profile_path),
            "content": yaml.safe_load(profile_path.read_text()),
        },
        "settings": settings_of(config),
        # Settings given instead of the profile's (on the command line): a replay keeps them;
        # the others come from the profile as it is then.
        "profile_overrides": profile_overrides(config),
        "seeds": {
            "seed": config.seed,
            "deterministic": config.deterministic,
            "python_hash_seed": PYTHON_HASH_SEED if config.deterministic else None,
        },
    }


def to_json(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


# ---- differences --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Difference:
    """One thing that differs between a run's record and now (or another run's record)."""

    kind: str  # data, source, lock, library, python, profile, settings, seeds, git
    subject: str  # what differs: a file, a library, a profile key, a setting
    recorded: Any
    now: Any
    # Shown, never refused: a commit changed but no file did, another machine.
    informational: bool = False
    detail: str | None = None  # what to say instead of "recorded X, now Y"

    def text(self, recorded_name: str = "recorded", now_name: str = "now") -> str:
        if self.detail:
            return f"{self.kind} {self.subject} {self.detail}"
        if self.kind in ("source", "data") and (self.recorded is None or self.now is None):
            state = "is new" if self.recorded is None else "is gone"
            return f"{self.kind} file {self.subject} {state}"
        if self.kind in ("source", "data"):
            return f"{self.kind} file {self.subject} changed (sha256 {_short(self.recorded)} -> {_short(self.now)})"
        return f"{self.kind} {self.subject}: {recorded_name} {_shown(self.recorded)}, {now_name} {_shown(self.now)}"

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "recorded": self.recorded,
            "now": self.now,
            "informational": self.informational,
            "detail": self.detail,
            "text": self.text(),
        }


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "none"


def _shown(value: Any) -> str:
    if value is None:
        return "absent"
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value (lists are leaves)."""
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat or ({prefix[:-1]: {}} if prefix else {})
    return {prefix[:-1]: value}


def _dict_differences(kind: str, a: Mapping, b: Mapping) -> list[Difference]:
    flat_a, flat_b = _flatten(a), _flatten(b)
    return [
        Difference(kind, key, flat_a.get(key), flat_b.get(key))
        for key in sorted(set(flat_a) | set(flat_b))
        if flat_a.get(key) != flat_b.get(key)
    ]


def differences(
    recorded: Mapping[str, Any], now: Mapping[str, Any], with_settings: bool = True
) -> list[Difference]:
    """What differs from `recorded` to `now` (two records of `capture()`), source files, lock,
    Python and library versions, profile keys, settings and seeds; a new commit whose files are
    the same, and another machine, are informational."""
    found: list[Difference] = []
    files_a, files_b = recorded.get("source_files", {}), now.get("source_files", {})
    for path in sorted(set(files_a) | set(files_b)):
        if files_a.get(path) != files_b.get(path):
            found.append(Difference("source", path, files_a.get(path), files_b.get(path)))
    git_a, git_b = recorded.get("git", {}), now.get("git", {})
    for key in ("commit", "uncommitted_changes"):
        if git_a.get(key) != git_b.get(key):
            found.append(Difference("git", key, git_a.get(key), git_b.get(key), informational=True))
    lock_a, lock_b = recorded.get("lock", {}), now.get("lock", {})
    if lock_a.get("sha256") != lock_b.get("sha256"):
        found.append(
            Difference(
                "lock",
                lock_a.get("path") or "requirements.lock",
                lock_a.get("sha256"),
                lock_b.get("sha256"),
            )
        )
    versions_a, versions_b = recorded.get("versions", {}), now.get("versions", {})
    for name in sorted(set(versions_a) | set(versions_b)):
        if versions_a.get(name) != versions_b.get(name):
            kind = "python" if name == "python" else "library"
            found.append(Difference(kind, name, versions_a.get(name), versions_b.get(name)))
    found += [
        dataclasses.replace(d, informational=True)
        for d in _dict_differences(
            "platform", recorded.get("platform", {}), now.get("platform", {})
        )
    ]
    found += _dict_differences(
        "profile",
        (recorded.get("profile") or {}).get("content") or {},
        (now.get("profile") or {}).get("content") or {},
    )
    if with_settings:
        found += _dict_differences(
            "settings", recorded.get("settings", {}), now.get("settings", {})
        )
        found += _dict_differences("seeds", recorded.get("seeds", {}), now.get("seeds", {}))
    return found
