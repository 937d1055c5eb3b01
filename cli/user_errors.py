"""What every command shares: a user's mistake reported in one line, and quiet libraries."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import click

from cli import exit_codes


class UserError(click.ClickException):
    """A bad setting or reference: one line on stderr, `error: ...`, exit code 2."""

    exit_code = exit_codes.BAD_SETTINGS

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def quiet_libraries() -> None:
    """TensorFlow, absl and Beam log at import and while they run; command output is for people."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")
    for name in ("absl", "tensorflow", "apache_beam"):
        logging.getLogger(name).setLevel(logging.ERROR)
