"""Vectorised float32 normal draws on Numba: a counter-based generator with Box-Muller.

PyTensor's Numba backend draws ``pt.random.normal`` one scalar at a time from NumPy's
``Generator`` (ziggurat sampling, a branch per number), which LLVM cannot vectorise: on
this project's machine 1.3 M float32 draws take 5 ms, one sixth of a Bayesian MLP's whole
ADVI step, where PyMC's mean-field approximation draws one standard normal per weight.

:class:`FastNormalDraws` fills the array without a branch per number instead. It takes
one 64-bit key from the node's NumPy generator (:func:`draw_key`: two ``rng.random()``
draws, so the generator advances and seeding, updates and checkpoints work as for any
random variable), then for pair ``i`` of outputs:

- ``h = mix(key + (i + 1) * 0x9E3779B97F4A7C15)``, SplitMix64's finaliser (two
  multiply-xorshift rounds), one 64-bit hash per pair;
- ``u = (h >> 32 + 1/2) / 2**32`` in (0, 1) and ``r = sqrt(-2 log u)``;
- the low 32 bits give an angle ``theta = (q + f) * pi / 2``: ``q`` the top two bits
  (quadrant), ``f`` in (-1/2, 1/2) from the other 30;
- the pair is ``(r cos theta, r sin theta)`` (Box-Muller), written to the first and the
  second half of the output, then ``loc + scale * z`` rounded to float32.

``log``, ``sin`` and ``cos`` are polynomials evaluated in float64 (``log`` from the bits
of ``u`` and a series of ``atanh``, ``sin``/``cos`` from Taylor series on
``|x| <= pi / 4`` and the quadrant's sign and swap), so the loop vectorises: 1.3 M draws
take 1.2-1.5 ms. The results agree with NumPy's ``log``/``cos``/``sin`` evaluated on the same
hashes to a few float32 ulps (``tests/test_fast_random.py``). Properties that differ from
NumPy's sampler: the uniform has 32-bit resolution, so ``|z| <= 6.76`` (a standard normal
exceeds that with probability 1.3e-11), and the stream is not NumPy's, so a Numba run and a
run on another backend draw different (equally distributed) numbers from the same seed.

The Op replaces, at compile time, every float32 ``normal`` draw whose ``loc`` and
``scale`` are single numbers and whose ``size`` is given; the rewrite belongs to the tag
``fast_float32_normal``, which :func:`plasagne.ops.fast_math.fast_math_mode` includes for
Numba (so ``plasagne.pymc_bridge.fit`` and its prediction use it). Compile with a mode
that lacks the tag (e.g. ``pytensor.compile.mode.get_mode("NUMBA")``) to keep PyTensor's
own draws. The Op's ``perform`` (Python and C backends) evaluates the same hashes with
NumPy's functions.

Examples
--------
>>> import pytensor, pytensor.tensor as pt
>>> from plasagne.ops.fast_math import fast_math_mode
>>> rng = pytensor.shared(np.random.default_rng(0))
>>> _, z = pt.random.normal(0, 1, size=(1000,), rng=rng, dtype="float32", return_next_rng=True)
>>> f = pytensor.function([], z, mode=fast_math_mode("NUMBA"))
>>> any(isinstance(n.op, FastNormalDraws) for n in f.maker.fgraph.apply_nodes)
True
>>> draws = f()
>>> draws.dtype, bool(abs(draws.mean()) < 0.1)
(dtype('float32'), True)
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.tensor.random.basic import NormalRV
from pytensor.tensor.type import TensorType
from pytensor.tensor.type_other import NoneTypeT

from .numba_bits import make_bit_casts

__all__ = [
    "FastNormalDraws",
    "fast_normal_cache_key",
    "FAST_NORMAL_TAG",
    "normals_from_key",
    "pair_hashes",
    "draw_key",
]

FAST_NORMAL_TAG = "fast_float32_normal"

GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2**64 / golden ratio, odd
MIX_1 = 0xBF58476D1CE4E5B9
MIX_2 = 0x94D049BB133111EB
TWO_32 = 2.0**32
_KERNEL_VERSION = 6

# draws of at least this many pairs are split into blocks on Numba's threads (at most
# _MAX_BLOCKS of them)
_MIN_BLOCK_PAIRS = 2**13
_MAX_BLOCKS = 8


def draw_key(rng: np.random.Generator) -> int:
    """The 64-bit key of one draw: the top 32 bits of two ``rng.random()`` numbers.

    (Two ``random()`` calls compile far faster in Numba than one ``integers`` call.)

    Parameters
    ----------
    rng : numpy.random.Generator
        Advanced by two ``random()`` draws.

    Returns
    -------
    int
        ``0 <= key < 2**64``.

    Examples
    --------
    >>> 0 <= draw_key(np.random.default_rng(0)) < 2**64
    True
    """
    high = int(rng.random() * TWO_32)
    low = int(rng.random() * TWO_32)
    return (high << 32) | low


def pair_hashes(key: int, pairs: int) -> np.ndarray:
    """The 64-bit hash of every pair index, ``mix(key + (i + 1) * GOLDEN_GAMMA)`` (NumPy).

    Parameters
    ----------
    key : int
        The draw's key, ``0 <= key < 2**64``.
    pairs : int
        Number of pairs.

    Returns
    -------
    numpy.ndarray
        ``uint64`` array of length ``pairs``.

    Examples
    --------
    >>> pair_hashes(0, 2).dtype
    dtype('uint64')
    """
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (np.arange(1, pairs + 1, dtype=np.uint64) * np.uint64(GOLDEN_GAMMA))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX_1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX_2)
    return z ^ (z >> np.uint64(31))


def normals_from_key(key: int, n: int) -> np.ndarray:
    """The ``n`` standard normal numbers :class:`FastNormalDraws` makes from ``key`` (float64).

    Evaluated with NumPy's ``log``, ``cos`` and ``sin``; the Numba kernel evaluates the
    same formula with polynomials and rounds to float32.

    Parameters
    ----------
    key : int
        The key drawn from the generator (:func:`draw_key`), ``0 <= key < 2**64``.
    n : int
        How many numbers.

    Returns
    -------
    numpy.ndarray
        float64 array of length ``n``: cosines of the ``n // 2`` pairs, their sines, and
        for odd ``n`` the cosine of one more pair.

    Examples
    --------
    >>> normals_from_key(7, 5).shape
    (5,)
    """
    half = n // 2
    h = pair_hashes(key, half + (n % 2))
    u = ((h >> np.uint64(32)).astype(np.float64) + 0.5) * 2.0**-32
    low = h & np.uint64(0xFFFFFFFF)
    quadrant = (low >> np.uint64(30)).astype(np.float64)
    offset = ((low & np.uint64(0x3FFFFFFF)).astype(np.float64) + 0.5) * 2.0**-30 - 0.5
    radius = np.sqrt(-2.0 * np.log(u))
    theta = (quadrant + offset) * (np.pi / 2)
    out = np.empty(n)
    out[:half] = radius[:half] * np.cos(theta[:half])
    out[half : 2 * half] = radius[:half] * np.sin(theta[:half])
    if n % 2:
        out[-1] = radius[-1] * np.cos(theta[-1])
    return out


class FastNormalDraws(Op):
    """``loc + scale * z`` for float32 standard normals ``z`` from a counter-based generator.

    Inputs ``(rng, size, loc, scale)`` and outputs ``(next_rng, draws)``, as PyTensor's
    ``normal`` random variable with a given ``size`` and single-number ``loc`` and
    ``scale``; put in by a rewrite at compile time (see the module).

    Parameters
    ----------
    ndim : int
        Number of dimensions of the draws (the length of ``size``).
    static_shape : tuple
        The draws' static shape (None where unknown), kept from the replaced node.
    inplace : bool
        Advance the input generator in place (as PyTensor's inplace random variables);
        otherwise a copy advances.

    Examples
    --------
    >>> import pytensor
    >>> rng = pytensor.shared(np.random.default_rng(1))
    >>> op = FastNormalDraws(ndim=1, static_shape=(None,))
    >>> next_rng, z = op(rng, pt.as_tensor([4]), pt.constant(0.0), pt.constant(1.0))
    >>> z.eval().shape
    (4,)
    """

    __props__ = ("ndim", "static_shape", "inplace")

    def __init__(self, ndim: int, static_shape: tuple, inplace: bool = False) -> None:
        self.ndim = int(ndim)
        self.static_shape = tuple(static_shape)
        self.inplace = bool(inplace)
        if self.inplace:
            self.destroy_map = {0: [0]}

    def make_node(self, rng: Any, size: Any, loc: Any, scale: Any) -> Apply:
        size = pt.as_tensor(size, dtype="int64")
        loc = pt.as_tensor(loc)
        scale = pt.as_tensor(scale)
        if size.type.ndim != 1:
            raise TypeError(f"FastNormalDraws: size must be a vector, found {size.type}")
        for name, value in (("loc", loc), ("scale", scale)):
            if not all(value.type.broadcastable):
                raise TypeError(
                    f"FastNormalDraws: {name} must hold a single number, found {value.type}"
                )
        draws = TensorType("float32", shape=self.static_shape)()
        return Apply(self, [rng, size, loc, scale], [rng.type(), draws])

    def perform(self, node: Apply, inputs: list, outputs: list) -> None:
        rng, size, loc, scale = inputs
        if not self.inplace:
            rng = copy.deepcopy(rng)
        key = draw_key(rng)
        shape = tuple(int(s) for s in size)
        z = normals_from_key(key, math.prod(shape))
        values = float(np.asarray(loc).item()) + float(np.asarray(scale).item()) * z
        outputs[0][0] = rng
        outputs[1][0] = values.astype(np.float32).reshape(shape)


@node_rewriter([NormalRV])
def _use_fast_normal(fgraph: Any, node: Apply) -> list | None:
    """Swap a float32 ``normal`` with a given size and single-number parameters for the Op."""
    rng, size, loc, scale = node.inputs
    next_rng, draws = node.outputs
    if draws.type.dtype != "float32" or isinstance(size.type, NoneTypeT):
        return None
    if not (all(loc.type.broadcastable) and all(scale.type.broadcastable)):
        return None
    op = FastNormalDraws(
        ndim=draws.type.ndim, static_shape=draws.type.shape, inplace=node.op.inplace
    )
    return op.make_node(rng, size, loc, scale).outputs


# after the random variables are made inplace (50.9), before Numba wraps them (100)
optdb.register(
    "plasagne_use_fast_float32_normal",
    dfs_rewriter(_use_fast_normal),
    FAST_NORMAL_TAG,
    position=99.5,
)


_registered = False


def register_numba() -> None:
    """Register the Numba kernel (once; importing Numba's dispatch is slow).

    Examples
    --------
    >>> register_numba()
    """
    global _registered
    if _registered:
        return
    _register_numba()
    _registered = True


def fast_normal_cache_key(op: FastNormalDraws) -> str:
    """The Numba kernel's cache key: everything its code depends on (``ndim``,
    ``inplace``, the kernel version), not ``static_shape``, so one compiled kernel serves
    draws of every size (each new network would otherwise compile its own).

    Examples
    --------
    >>> a = FastNormalDraws(ndim=2, static_shape=(1, 10))
    >>> fast_normal_cache_key(a) == fast_normal_cache_key(FastNormalDraws(2, (1, 99)))
    True
    """
    from hashlib import sha256

    from .blas_threads import parallel_kernels
    from .opaque_calls import kernel_salt

    salt = kernel_salt(_KERNEL_VERSION, parallel_kernels())
    text = f"plasagne.FastNormalDraws(ndim={op.ndim}, inplace={op.inplace}, {salt})"
    return sha256(text.encode()).hexdigest()


def _register_numba() -> None:
    import numba.np.unsafe.ndarray as numba_ndarray
    from numba import prange
    from pytensor.link.numba.dispatch.basic import (
        numba_njit,
        register_funcify_and_cache_key,
    )
    from pytensor.link.numba.dispatch.compile_ops import numba_deepcopy

    from .blas_threads import parallel_kernels
    from .opaque_calls import kernel_salt, node_loop_behind_call

    float64_from_bits, bits_of_float64 = make_bit_casts(signed=False)

    gamma, mix_1, mix_2 = np.uint64(GOLDEN_GAMMA), np.uint64(MIX_1), np.uint64(MIX_2)
    s1, s27, s30, s31, s32, s52 = (np.uint64(s) for s in (1, 27, 30, 31, 32, 52))
    low32, low30 = np.uint64(0xFFFFFFFF), np.uint64(0x3FFFFFFF)
    mantissa_mask, exponent_one = np.uint64((1 << 52) - 1), np.uint64(1023 << 52)
    sqrt2, ln2, half_pi = math.sqrt(2.0), math.log(2.0), math.pi / 2
    a3, a5, a7, a9, a11 = (1.0 / k for k in (3, 5, 7, 9, 11))  # atanh's series
    # Taylor coefficients of sin and cos on |x| <= pi / 4 (next terms below 2e-9)
    sin3, sin5, sin7, sin9 = (
        (-1) ** j / math.factorial(k) for j, k in ((1, 3), (2, 5), (3, 7), (4, 9))
    )
    cos2, cos4, cos6, cos8, cos10 = (
        (-1) ** j / math.factorial(k) for j, k in ((1, 2), (2, 4), (3, 6), (4, 8), (5, 10))
    )

    @numba_njit(inline="always", error_model="numpy")
    def mix(i, key):
        z = key + np.uint64(i + 1) * gamma
        z = (z ^ (z >> s30)) * mix_1
        z = (z ^ (z >> s27)) * mix_2
        return z ^ (z >> s31)

    @numba_njit(inline="always", error_model="numpy")
    def log_unit(u):
        """log(u) for 0 < u < 1 from the bits of u (relative error below 1e-9)."""
        bits = bits_of_float64(u)
        exponent = np.float64(bits >> s52) - 1023.0
        mantissa = float64_from_bits((bits & mantissa_mask) | exponent_one)  # in [1, 2)
        high = mantissa > sqrt2
        mantissa = mantissa * 0.5 if high else mantissa
        exponent = exponent + 1.0 if high else exponent
        s = (mantissa - 1.0) / (mantissa + 1.0)
        s2 = s * s
        series = 1.0 + s2 * (a3 + s2 * (a5 + s2 * (a7 + s2 * (a9 + s2 * a11))))
        return exponent * ln2 + 2.0 * s * series

    @numba_njit(inline="always", error_model="numpy")
    def pair(i, key):
        h = mix(i, key)
        u = (np.float64(h >> s32) + 0.5) * 2.0**-32
        radius = np.sqrt(-2.0 * log_unit(u))
        low = h & low32
        quadrant = low >> s30
        x = ((np.float64(low & low30) + 0.5) * 2.0**-30 - 0.5) * half_pi
        x2 = x * x
        sin_x = x * (1.0 + x2 * (sin3 + x2 * (sin5 + x2 * (sin7 + x2 * sin9))))
        cos_x = 1.0 + x2 * (cos2 + x2 * (cos4 + x2 * (cos6 + x2 * (cos8 + x2 * cos10))))
        # rotate (cos x, sin x) by quadrant * 90 degrees: swap for odd quadrants, then signs
        swap = (quadrant & s1) == s1
        first = sin_x if swap else cos_x
        second = cos_x if swap else sin_x
        first_sign = 1.0 - 2.0 * np.float64((quadrant ^ (quadrant >> s1)) & s1)
        second_sign = 1.0 - 2.0 * np.float64(quadrant >> s1)
        return radius * first * first_sign, radius * second * second_sign

    @numba_njit(error_model="numpy")
    def fill(first, second, key, loc, scale, offset):
        # draw pair i + offset into first[i], second[i] (the only inlined copy of pair)
        for i in range(first.shape[0]):
            cos_part, sin_part = pair(i + offset, key)
            first[i] = np.float32(loc + scale * cos_part)
            second[i] = np.float32(loc + scale * sin_part)

    def fill_blocks(first, second, params, key_bits):
        # blocks of pairs on Numba's threads: pair low + i into first[low + i], second[...]
        half = first.shape[0]
        blocks = max(1, min(_MAX_BLOCKS, half // _MIN_BLOCK_PAIRS))
        for block in prange(blocks):
            index = np.int64(block)
            low = half * index // blocks
            high = half * (index + 1) // blocks
            key = np.uint64(key_bits)
            fill(first[low:high], second[low:high], key, params[0], params[1], low)

    @register_funcify_and_cache_key(FastNormalDraws)
    def numba_fast_normal(op: FastNormalDraws, node: Any = None, **kwargs: Any) -> Any:
        ndim, inplace = op.ndim, op.inplace
        parallel = parallel_kernels()
        if parallel:
            salt = kernel_salt(_KERNEL_VERSION, parallel)
            # one kernel for draws of every size and rank (the key names no shape)
            fill_pairs = node_loop_behind_call(
                op,
                node,
                salt,
                fill_blocks,
                numba_njit,
                parallel,
                [("float32", 1), ("float32", 1), ("float64", 1), "int64"],
                key=f"plasagne-fast-normal-fill-{salt}",
            )

            @numba_njit
            def fill_all(first, second, key, mu, sigma):
                if first.shape[0] >= _MIN_BLOCK_PAIRS:
                    fill_pairs(first, second, np.array([mu, sigma]), np.int64(key))
                else:
                    fill(first, second, key, mu, sigma, 0)
        else:

            @numba_njit
            def fill_all(first, second, key, mu, sigma):
                fill(first, second, key, mu, sigma, 0)

        @numba_njit
        def fast_normal(rng, size, loc, scale):
            if not inplace:
                rng = numba_deepcopy(rng)
            high = np.uint64(rng.random() * TWO_32)
            key = (high << s32) | np.uint64(rng.random() * TWO_32)
            shape = numba_ndarray.to_fixed_tuple(size, ndim)
            draws = np.empty(shape, dtype=np.float32)
            flat = draws.reshape(-1)
            n = flat.shape[0]
            half = n // 2
            mu = np.float64(loc.ravel()[0])
            sigma = np.float64(scale.ravel()[0])
            fill_all(flat[:half], flat[half : 2 * half], key, mu, sigma)
            if n % 2 == 1:  # the last draw: the first of pair `half`, its second unused
                fill(flat[n - 1 :], np.empty(1, dtype=np.float32), key, mu, sigma, half)
            return rng, draws

        return fast_normal, fast_normal_cache_key(op)
