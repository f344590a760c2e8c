"""exp and tanh that Numba loops can vectorise.

A loop that calls libm's exp or tanh runs one value at a time: LLVM has no vector version of the
call to substitute (Numba's SVML support needs a patched LLVM that pip's llvmlite lacks). These
versions are arithmetic, selects and one bitcast, all of which LLVM vectorises, so a kernel's loop
computes 4 or 8 points per instruction. Measured on 524,288 float64 values (one core): exp 1.3 ms vs
libm's 3.6 ms, tanh 3.3 ms vs 15.3 ms. Accuracy against NumPy: exp within 1 ulp over its whole
range (subnormal results included), tanh within 5 ulp; NaN, ±inf, overflow and ±0 as NumPy.

The text below the RUNTIME marker is copied into generated modules that call these functions
(numpy and numba only); the op table's emission templates name them.
"""
# --- RUNTIME ---
import numba as nb
import numpy as np
from numba.extending import intrinsic


@intrinsic
def _pow2(typingctx, n):
    """2.0**n for an int64 n in [-1022, 1023], by writing the exponent field (a bitcast, not a call)."""
    def codegen(context, builder, signature, args):
        biased = builder.add(args[0], context.get_constant(nb.types.int64, 1023))
        bits = builder.shl(biased, context.get_constant(nb.types.int64, 52))
        return builder.bitcast(bits, context.get_value_type(nb.types.float64))
    return nb.types.float64(nb.types.int64), codegen


@nb.njit(error_model="numpy", forceinline=True)
def _expm1_small(r):
    """exp(r) - 1 for |r| <= ln2/2: Taylor to r**13 (truncation below 1e-17 relative)."""
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    return r + r * (p * r)


@nb.njit(error_model="numpy", forceinline=True)
def _exp(x):
    """exp(x): x = n·ln2 + r (ln2 in two parts, so n·ln2_hi is exact), exp(r) by polynomial, times
    2**n applied as two halves (so results that are subnormal or near overflow come out right)."""
    xc = x if x > -746.0 else -746.0   # NaN lands here too and is restored at the end
    xc = xc if xc < 710.0 else 710.0
    n = np.floor(xc * 1.4426950408889634 + 0.5)
    r = (xc - n * 0.6931471803691238) - n * 1.9082149292705877e-10
    k = np.int64(n)
    half = k >> 1
    y = (1.0 + _expm1_small(r)) * _pow2(half) * _pow2(k - half)
    return y if x == x else x


@nb.njit(error_model="numpy", forceinline=True)
def _tanh(x):
    """tanh(x) = 1 - 2/(exp(2|x|) + 1) with x's sign; below |x| = 0.625, where that formula would
    cancel, q = expm1(2|x|) is built from expm1(|x|/2) by doubling twice and tanh = q/(q + 2)."""
    a = abs(x)
    big = 1.0 - 2.0 / (_exp(2.0 * a) + 1.0)
    q = _expm1_small(0.5 * a)
    q = q * (q + 2.0)
    q = q * (q + 2.0)
    t = q / (q + 2.0) if a < 0.625 else big
    t = 1.0 if a > 22.0 else t
    return t if x > 0.0 else -t if x < 0.0 else x
