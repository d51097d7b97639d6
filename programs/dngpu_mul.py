"""The improved Neural GPU on binary multiplication (Freivalds & Liepins 2017): ``dngpu_add.py``'s
machine and knobs (read its docstring) with the authors' multiplication settings, 96 channels
and 10% dropout. The input is two numbers of up to 20 bits, least significant bit first, around
``*``; the output, at the same positions, is their product's bits then blanks. The authors
report it learned in about 800 of their steps (each every length bin at once, 32 examples per
bin), where Kaiser & Sutskever's Neural GPU needed about 30,000.
"""

from dngpu_add import dngpu  # a module beside the program: the run copies it

import difmachine as dm

program = dngpu(dm.BinaryMultiplication, channels=96, dropout=0.1)
