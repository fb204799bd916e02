"""Run the Triton kernels on CPU tensors through Triton's interpreter when no GPU is present.

triton.jit decides between compiled and interpreted kernels when a kernel module is imported, so the variable
must be set before cola_lam.kernels is first imported; if something imported it earlier, reload it.
"""

import importlib
import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
    kernel_module = sys.modules.get("cola_lam.kernels.nearest_code")
    if kernel_module is not None and not kernel_module.INTERPRETED:
        importlib.reload(kernel_module)
        importlib.reload(sys.modules["cola_lam.kernels"])
        for name in ("cola_lam.quantizer", "cola_lam"):
            if name in sys.modules:
                importlib.reload(sys.modules[name])

torch.set_num_threads(min(2, torch.get_num_threads()))
