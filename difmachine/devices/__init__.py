"""Devices: one module per family."""

from .attention import Attention as Attention
from .attention import StoryEmbedding as StoryEmbedding
from .dnc import DNCMemory as DNCMemory
from .ham import HAMMemory as HAMMemory
from .ntm import NTMMemory as NTMMemory
from .programmer import ARITHMETIC_OPS as ARITHMETIC_OPS
from .programmer import TABLE_OPS as TABLE_OPS
from .programmer import Op as Op
from .programmer import OpSelector as OpSelector
from .programmer import Table as Table
from .sparse import SparseMemory as SparseMemory
from .structures import JoulinStack as JoulinStack
from .structures import NeuralDeque as NeuralDeque
from .structures import NeuralQueue as NeuralQueue
from .structures import NeuralStack as NeuralStack
from .tape import InputTape as InputTape
from .tape import MemoryTape as MemoryTape
from .tape import OutputTape as OutputTape
