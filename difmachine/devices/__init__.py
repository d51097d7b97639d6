"""Devices: one module per family."""

from .attention import Attention as Attention
from .attention import StoryEmbedding as StoryEmbedding
from .ntm import NTMMemory as NTMMemory
from .structures import JoulinStack as JoulinStack
from .structures import NeuralDeque as NeuralDeque
from .structures import NeuralQueue as NeuralQueue
from .structures import NeuralStack as NeuralStack
