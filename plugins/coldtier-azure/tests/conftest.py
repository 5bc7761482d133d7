"""Azurite fixtures for the plugin's tests (see _azurite.py)."""

from __future__ import annotations

from _azurite import azurite, container

__all__ = ["azurite", "container"]
