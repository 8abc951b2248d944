"""Lowering and GEMM ops for NCHW float32/float64 arrays (compiled kernels, NumPy fallback).

A convolution group's forward is `matmul(weights, lower(x, geom, weights))`; the weight format
(`make_weights(w2d, "dense" | "compact" | "csr")`) decides which kernel runs. Training uses
`conv_forward_nchw` / `conv_backward`: all groups at once, the batch split over threads.
Pooling: `max_pool_forward` / `max_pool_backward` (with an argmax mask), `ave_pool_*`.
`Program` binds a sequence of these calls to fixed arrays once and runs it many times.
"""
from minicaffe.ops.conv import conv_backward, conv_forward_nchw
from minicaffe.ops.formats import CompactWeights, CSRWeights, DenseWeights, make_weights
from minicaffe.ops.geometry import ConvGeometry
from minicaffe.ops.im2col import col2im, col2im_batch, im2col, im2col_batch, im2col_rows
from minicaffe.ops.matmul import conv_forward, gemm, linear, lower, matmul
from minicaffe.ops.native import (MAX_THREADS, available_isas, build_info, get_isa,
                                  get_num_threads, set_isa, set_num_threads)
from minicaffe.ops.pooling import (ave_pool_backward, ave_pool_forward, max_pool_backward,
                                   max_pool_forward)
from minicaffe.ops.program import Program

__all__ = [
    "ConvGeometry", "im2col", "im2col_batch", "im2col_rows", "col2im", "col2im_batch", "gemm",
    "DenseWeights", "CompactWeights", "CSRWeights", "make_weights", "lower", "matmul", "linear",
    "conv_forward", "conv_forward_nchw", "conv_backward", "max_pool_forward", "max_pool_backward",
    "ave_pool_forward", "ave_pool_backward", "Program",
    "set_num_threads", "get_num_threads", "build_info", "MAX_THREADS", "set_isa", "get_isa",
    "available_isas",
]
