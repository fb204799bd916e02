"""Run the Triton kernels on CPU tensors through Triton's interpreter when no GPU is present.

Triton reads TRITON_INTERPRET when its modules (triton.language's helpers included) are first imported, so it
is set here, before any test module imports triton. If triton was imported earlier (a plugin, another
conftest), the kernel tests fail with a message asking for TRITON_INTERPRET=1 in the environment instead.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

torch.set_num_threads(min(2, torch.get_num_threads()))
