"""Tasks: batch generators with their losses and metrics."""

from .babi import Babi as Babi
from .base import AbstractBitTask as AbstractBitTask
from .base import AbstractTask as AbstractTask
from .base import Batch as Batch
from .base import Context as Context
from .copy import Copy as Copy
from .graves import AssociativeRecall as AssociativeRecall
from .graves import PrioritySort as PrioritySort
from .graves import RepeatCopy as RepeatCopy
from .parity import Parity as Parity
from .programmer import Arithmetic as Arithmetic
from .programmer import TableQA as TableQA
from .symbols import AbstractSymbolTask as AbstractSymbolTask
from .symbols import AnBn as AnBn
from .symbols import BigramFlip as BigramFlip
from .symbols import Reverse as Reverse
from .symbols import SymbolCopy as SymbolCopy
from .tokens import AbstractTokenTask as AbstractTokenTask
from .tokens import Addition as Addition
from .tokens import DateFormat as DateFormat
from .tokens import ReverseString as ReverseString
from .tokens import SortString as SortString
