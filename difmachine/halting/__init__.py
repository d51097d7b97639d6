"""Halting policies: how many inner steps a machine's cell takes per input step.

The contract (:class:`~difmachine.protocol.AbstractHalting`, :class:`~difmachine.protocol.Halted`)
is on the ground floor; each policy is one file here: :class:`Fixed`, :class:`ACT` (Graves 2016),
:class:`PonderNet` (Banino et al. 2021).
"""

from ..protocol import AbstractHalting as AbstractHalting
from ..protocol import Halted as Halted
from .act import ACT as ACT
from .act import act_weights as act_weights
from .fixed import Fixed as Fixed
from .pondernet import PonderNet as PonderNet
from .pondernet import geometric_prior as geometric_prior
from .pondernet import halting_distribution as halting_distribution

__all__ = [
    "AbstractHalting",
    "Halted",
    "Fixed",
    "ACT",
    "act_weights",
    "PonderNet",
    "halting_distribution",
    "geometric_prior",
]
