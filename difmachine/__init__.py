"""difmachine: differentiable machines as short declarative programs, compiled with JAX."""

__version__ = "0.1.0"

from . import addressing as addressing
from . import tasks as tasks
from .checkpoint import load as load_checkpoint  # noqa: F401
from .checkpoint import save as save_checkpoint  # noqa: F401
from .compiler import compile as compile
from .controllers import GRU as GRU
from .controllers import LSTM as LSTM
from .controllers import MLP as MLP
from .controllers import RNN as RNN
from .devices import ARITHMETIC_OPS as ARITHMETIC_OPS
from .devices import TABLE_OPS as TABLE_OPS
from .devices import Attention as Attention
from .devices import DNCMemory as DNCMemory
from .devices import JoulinStack as JoulinStack
from .devices import NeuralDeque as NeuralDeque
from .devices import NeuralQueue as NeuralQueue
from .devices import NeuralStack as NeuralStack
from .devices import NTMMemory as NTMMemory
from .devices import Op as Op
from .devices import OpSelector as OpSelector
from .devices import SparseMemory as SparseMemory
from .devices import StoryEmbedding as StoryEmbedding
from .devices import Table as Table
from .errors import CheckpointError as CheckpointError
from .errors import DifmachineError as DifmachineError
from .errors import ProgramError as ProgramError
from .errors import SpecError as SpecError
from .halting import ACT as ACT
from .halting import Fixed as Fixed
from .halting import PonderNet as PonderNet
from .halting import act_weights as act_weights
from .machine import CompiledMachine as CompiledMachine
from .machine import Machine as Machine
from .neural_gpu import CompiledNeuralGPU as CompiledNeuralGPU
from .neural_gpu import NeuralGPU as NeuralGPU
from .optim import gradient_noise as gradient_noise
from .program import Program as Program
from .program import build as build
from .program import load_program as load_program
from .program import param as param
from .protocol import AbstractCompiledMachine as AbstractCompiledMachine
from .protocol import AbstractController as AbstractController
from .protocol import AbstractDevice as AbstractDevice
from .protocol import AbstractHalting as AbstractHalting
from .protocol import AbstractMachine as AbstractMachine
from .protocol import CellOutput as CellOutput
from .protocol import Component as Component
from .protocol import Field as Field
from .protocol import Halted as Halted
from .protocol import TraceField as TraceField
from .rundir import load_run as load_run
from .seq2seq import BiLSTM as BiLSTM
from .seq2seq import CompiledSeq2Seq as CompiledSeq2Seq
from .seq2seq import Encoder as Encoder
from .seq2seq import Seq2Seq as Seq2Seq
from .specs import check_spec as check_spec
from .tasks import Addition as Addition
from .tasks import AnBn as AnBn
from .tasks import Arithmetic as Arithmetic
from .tasks import AssociativeRecall as AssociativeRecall
from .tasks import Babi as Babi
from .tasks import BigramFlip as BigramFlip
from .tasks import BinaryAddition as BinaryAddition
from .tasks import BinaryCopy as BinaryCopy
from .tasks import BinaryDuplicate as BinaryDuplicate
from .tasks import BinaryMultiplication as BinaryMultiplication
from .tasks import BinaryReverse as BinaryReverse
from .tasks import BitSequences as BitSequences
from .tasks import Context as Context
from .tasks import Copy as Copy
from .tasks import DateFormat as DateFormat
from .tasks import Parity as Parity
from .tasks import PrioritySort as PrioritySort
from .tasks import RepeatCopy as RepeatCopy
from .tasks import Reverse as Reverse
from .tasks import ReverseString as ReverseString
from .tasks import SortString as SortString
from .tasks import SymbolCopy as SymbolCopy
from .tasks import TableQA as TableQA
from .tasks import TokenPairs as TokenPairs
from .training import evaluate as evaluate
from .training import train as train

__all__ = [name for name in dir() if not name.startswith("_")]
