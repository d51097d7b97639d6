"""Tasks: batch generators with their losses and metrics."""

from .base import AbstractTask as AbstractTask
from .base import Batch as Batch
from .copy import Copy as Copy
