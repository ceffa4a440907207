"""Benchmark scripts that must behave on any machine."""

import subprocess
import sys

import pytest
import torch

from .conftest import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU path is the check itself")
def test_the_cuda_check_says_in_one_line_that_there_is_no_gpu_and_exits_0(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cuda_check.py"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and done.stdout.count("\n") == 1 and "no CUDA device" in done.stdout
    assert not (tmp_path / "out").exists()
