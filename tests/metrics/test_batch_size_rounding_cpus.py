"""Tests that compare results bit for bit across batchings hold on CPUs whose BLAS rounds a product's rows by the
batch's size: MKL's AVX2 kernels (CPUs without AVX-512, and AMD CPUs, where MKL takes its AVX2 path) give the first
rows of a 3-row float32 product and of a 2-row one different last bits, where its AVX-512 kernels happen to agree.
Three such tests passed on an AVX-512 machine only (2026-12-07): the Inception stub's features of a folder's first
two images against the first two of the whole folder, fid() in batches of 4 against evaluate() in one batch, and
DisDiff's anchor refit (batches of 3) against an independent fit on the 8 images at once. They run here again in
a subprocess with MKL capped at AVX2 (MKL_ENABLE_INSTRUCTIONS is read when MKL loads)."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
NODES = ["metrics/test_generation_images.py::test_sources_layouts_identities_and_subsets",
         "metrics/test_generation_images.py::test_evaluate_passes_every_setting_to_the_feature_level_metrics",
         "methods/test_disdiff_dyga.py::test_anchor_refits_equal_an_independent_fit_on_the_training_images"]


def test_batchings_compare_bit_for_bit_with_mkl_capped_at_avx2():
    env = dict(os.environ, MKL_ENABLE_INSTRUCTIONS="AVX2", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           *(str(TESTS / node) for node in NODES)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "3 passed" in run.stdout, run.stdout[-3000:]
