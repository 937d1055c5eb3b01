"""Pusher: TFX's component, run by this folder's executor (see executor.py)."""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.pusher import executor


def pusher_component(**arguments) -> tfx.components.Pusher:
    """TFX's Pusher with `arguments` (its own), run by executor.Executor: the same component,
    spec and outputs; a version folder appears whole or not at all."""
    component = tfx.components.Pusher(**arguments)
    component.executor_spec = executor_spec.ExecutorClassSpec(executor.Executor)
    return component
