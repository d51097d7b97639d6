"""The improved Neural GPU on reversal, a sanity check of its length generalisation:
``dngpu_add.py``'s machine and knobs (read its docstring) on ``k`` random bits to be written out
reversed, trained on 1-40 bits. Every output bit must travel up to ``k`` positions, so a machine
whose transport along the positions only works at the lengths it was trained on fails here.

Measured (README, "The improved Neural GPU"): seed 0 had every training-mix sequence right at
step 2,200 of 3,000 (``--steps 3000``, 947 s beside another run) and then every sequence right at
40, 80, 160, 400, 1,000 and 2,000 bits (``difmachine eval RUN --lengths 400,1000,2000``).
"""

from dngpu_add import dngpu  # a module beside the program: the run copies it

import difmachine as dm

program = dngpu(dm.BinaryReverse, channels=48, dropout=0.5, bits=40)
