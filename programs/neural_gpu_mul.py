"""Neural GPU on binary multiplication (Kaiser & Sutskever 2015, "Neural GPUs learn algorithms").

The machine, the training techniques and their knobs are those of ``neural_gpu_add.py`` (read
its docstring; ``--set`` takes the same names): only the task differs. The input is two numbers
of up to 20 bits, least significant bit first, separated by ``*``; the output, at the same
positions, is their product's bits then blanks.
"""

from neural_gpu_add import adaptive, bits, bucket, curriculum
from neural_gpu_add import program as addition  # a module beside the program: the run copies it

import difmachine as dm

program = addition.replace(
    task=dm.BinaryMultiplication(
        min_bits=1, max_bits=bits, curriculum=curriculum, bucket=bucket, adaptive=adaptive
    )
)
