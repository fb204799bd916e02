"""Test setup: Triton kernels run in the interpreter on CPU tensors when no GPU is present."""

import os
import sys
from pathlib import Path

import torch

if not torch.cuda.is_available():
    # must be set before any Triton kernel is defined, i.e. before cola_wm.kernels is imported
    os.environ["TRITON_INTERPRET"] = "1"

# test modules import the shared helpers (cola_wm_test_helpers.py) from this folder
sys.path.insert(0, str(Path(__file__).parent))
