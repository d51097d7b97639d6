"""Devices: one module per family."""

from .ntm import NTMMemory as NTMMemory
