"""Shared array type aliases (jaxtyping), one place for the whole library."""

from typing import Any

from jaxtyping import Array, Float, PyTree

Weights = Float[Array, " slots"]
Memory = Float[Array, "slots width"]
Vector = Float[Array, " width"]
Scalar = Float[Array, ""]
Sequence = Float[Array, "time features"]
Mask = Float[Array, " time"]
State = PyTree[Any]
Params = PyTree[Any]

__all__ = ["Memory", "Weights", "Vector", "Scalar", "Sequence", "Mask", "State", "Params"]
