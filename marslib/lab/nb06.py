"""Checks for notebook 06's exercises (see :mod:`marslib.lab`)."""

from __future__ import annotations

from . import Exercise, Wrong  # noqa: F401

EXERCISES: list[Exercise] = []
