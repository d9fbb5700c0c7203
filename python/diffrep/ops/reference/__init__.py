"""Pure-PyTorch twins of every native op.

They define the semantics the native kernels must reproduce, run on any device and in float64,
are differentiable by autograd, and are what runs when no native build is usable.
"""
