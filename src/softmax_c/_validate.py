"""Argument checks shared by the fast functions (``_api``) and the NumPy
reference (``reference``), so that both raise the same exceptions with the
same messages.

Every function here only reads its arguments: callers run all checks before
their first write, so a call that raises leaves its inputs and ``out``
untouched.  Messages name the parameter and the bad value.
"""
import numbers
import operator

import numpy as np

try:  # NumPy >= 1.25
    from numpy.exceptions import AxisError
except ImportError:  # pragma: no cover - older NumPy
    AxisError = np.AxisError

__all__ = [
    "AxisError",
    "as_array",
    "REDUCTIONS",
    "check_ignore_index",
    "check_label_smoothing",
    "check_num_threads",
    "check_out",
    "check_reduction",
    "check_same_shape",
    "check_target",
    "check_target_range",
    "check_weight",
    "check_where",
    "check_weights",
    "check_bool",
    "forward_dtypes",
    "half_kind",
    "fused_options",
    "logsumexp_path",
    "MAX_THREADS",
    "normalize_axis",
    "normalize_single_axis",
    "result_dtypes",
]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_F16 = np.dtype(np.float16)

REDUCTIONS = ("mean", "sum", "none")


def _is_int(value):
    """True for Python and NumPy integers, False for bools."""
    if type(value) is int:  # the common case, without the ABC checks below
        return True
    return (isinstance(value, (numbers.Integral, np.integer))
            and not isinstance(value, (bool, np.bool_)))


def as_array(x, name="x"):
    """`x` as a plain ndarray without copying when possible: ndarrays as
    they are, a subclass (np.matrix, a user's) as a plain view, so results
    are plain arrays; objects with ``__array__`` and sequences through
    ``np.asarray``, objects that only speak DLPack through
    ``np.from_dlpack``.

    Raises
    ------
    TypeError
        `x` is a masked array, whose mask would be silently dropped (the
        functions that honour masks take them before calling this).
    """
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"`{name}` is a masked array (numpy.ma.MaskedArray), whose mask this "
            f"function does not take: pass {name}.filled(value) or "
            f"numpy.ma.getdata({name}) (softmax_c's softmax, log_softmax and "
            f"logsumexp do take masks)")
    if isinstance(x, np.ndarray):
        return x.view(np.ndarray)
    if not hasattr(x, "__array__") and hasattr(x, "__dlpack__"):
        return np.from_dlpack(x)
    return np.asarray(x)


# ---------------------------------------------------------------- threads

# The kernels take the thread count as a C int.
MAX_THREADS = 2**31 - 1


def check_num_threads(n):
    """Return `n` as an int after checking it is an int in
    ``[1, MAX_THREADS]``.

    Raises
    ------
    TypeError
        `n` is not an int (a bool is not an int here).
    ValueError
        `n` is less than 1 or greater than ``2**31 - 1``.
    """
    if not _is_int(n):
        raise TypeError(f"`num_threads` must be an int >= 1 or None, got {n!r}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"`num_threads` must be >= 1, got {n}")
    if n > MAX_THREADS:
        raise ValueError(f"`num_threads` must be at most 2**31 - 1 = {MAX_THREADS}, got {n}")
    return n


# ---------------------------------------------------------------- dtypes

def half_kind(dtype):
    """0 for float16, 1 for bfloat16 (the ml_dtypes NumPy dtype, recognised
    by its name, kind, character code and size: ml_dtypes is not imported),
    -1 for every other dtype."""
    if dtype.itemsize != 2:
        return -1
    if dtype.kind == "f":
        return 0
    if dtype.kind == "V" and dtype.char == "E" and dtype.name == "bfloat16":
        return 1
    return -1


def forward_dtypes(dtype, requested, name="x"):
    """The forward functions' dtype policy, with their ``dtype=`` keyword:
    ``(compute_dtype, result_dtype)`` for an input of `dtype`.

    As :func:`result_dtypes`, and bfloat16 too (computed in float32,
    returned as bfloat16).  `requested` is None (the result dtype of the
    policy) or a dtype: float32 for a float32 result from float16 or
    bfloat16 input; the policy's own result dtype is accepted too.

    Raises
    ------
    TypeError
        An unsupported input dtype (naming `name`), or a `requested` dtype
        other than those (naming `dtype`).
    """
    dtype = np.dtype(dtype)
    if half_kind(dtype) == 1:
        compute, result = _F32, dtype
    else:
        compute, result = result_dtypes(dtype, name)
    if requested is None:
        return compute, result
    try:
        req = np.dtype(requested)
    except TypeError:
        raise TypeError(f"`dtype` must be None or a NumPy dtype, got {requested!r}") from None
    if req == result:
        return compute, result
    if req == _F32 and half_kind(dtype) >= 0:
        return compute, _F32
    raise TypeError(
        f"`dtype` must be None or float32 (for float16 or bfloat16 `{name}`), "
        f"got {req} for `{name}` of dtype {dtype}")


def backward_dtypes(da, db, names):
    """The backward products' dtype policy for operands of dtypes `da` and
    `db`: ``(compute_dtype, result_dtype, kind)``.

    Each operand is checked on its own (naming it in `names`); then
    ``np.result_type(da, db)`` decides.  float16 or bfloat16 (both operands
    of that dtype, or one with an integer or bool that promotes to it) is
    computed in float32 and returned in itself, `kind` 0 or 1 (the
    half-width kernels); every other result dtype as :func:`result_dtypes`,
    `kind` -1.  So a half-width operand with a float32 one gives float32,
    float16 with bfloat16 gives float32, and with float64 float64.
    """
    for dt, name in ((np.dtype(da), names[0]), (np.dtype(db), names[1])):
        if half_kind(dt) < 0:
            result_dtypes(dt, name)
    rt = np.result_type(da, db)
    kind = half_kind(rt)
    if kind >= 0:
        return _F32, rt.newbyteorder("="), kind
    compute, result = result_dtypes(rt, names[0])
    return compute, result, -1


def result_dtypes(dtype, name="x"):
    """The dtype policy: ``(compute_dtype, result_dtype)`` for an input of
    `dtype`.

    float32 and float64 compute and return themselves (in native byte
    order); float16 computes in float32 and returns float16; bool and
    integers compute and return float64.

    Raises
    ------
    TypeError
        For every other dtype (complex, long double, object, strings,
        datetimes, structured), naming it and the parameter `name`.
    """
    dtype = np.dtype(dtype)
    kind = dtype.kind
    if kind == "f" and dtype.itemsize <= 8:
        if dtype.itemsize == 2:
            return _F32, _F16
        native = _F32 if dtype.itemsize == 4 else _F64
        return native, native
    if kind in "biu":
        return _F64, _F64
    if half_kind(dtype) == 1:
        raise TypeError(
            f"`{name}` has dtype bfloat16, which this function does not take yet "
            f"(softmax, log_softmax and logsumexp do): cast it to float32 first")
    raise TypeError(
        f"`{name}` has unsupported dtype {dtype}: expected float16, float32, "
        f"float64, an integer or bool dtype"
    )


# ---------------------------------------------------------------- axes

def normalize_single_axis(axis, ndim, name="axis"):
    """`axis` (an int, negative counting from the end) as a non-negative
    int below `ndim`.

    Raises
    ------
    TypeError
        `axis` is not an int.
    numpy.exceptions.AxisError
        `axis` is out of range for `ndim` dimensions.
    """
    if not _is_int(axis):
        raise TypeError(f"`{name}` must be an int, got {axis!r}")
    axis = operator.index(axis)
    if not -ndim <= axis < ndim:
        raise AxisError(axis, ndim)
    return axis % ndim


def normalize_axis(axis, ndim):
    """`axis` (an int, a tuple of ints or None) as a sorted tuple of
    distinct non-negative ints below `ndim`.

    None means every axis (``()`` for a 0-d array: its single element is
    then a slice on its own, as ``scipy.special.softmax(x, axis=None)``
    treats it).  An empty tuple means no axis: every element is a slice of
    one element.

    Raises
    ------
    TypeError
        `axis` is not an int, a tuple of ints or None.
    numpy.exceptions.AxisError
        An axis is out of range.
    ValueError
        An axis is repeated.
    """
    if axis is None:
        return tuple(range(ndim))
    if _is_int(axis):
        return (normalize_single_axis(axis, ndim),)
    if isinstance(axis, tuple):
        if not all(_is_int(a) for a in axis):
            raise TypeError(
                f"`axis` must be an int, a tuple of ints or None, got {axis!r}")
        axes = tuple(normalize_single_axis(a, ndim) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"`axis` has a repeated axis: {axis!r}")
        return tuple(sorted(axes))
    raise TypeError(f"`axis` must be an int, a tuple of ints or None, got {axis!r}")


# ---------------------------------------------------------------- where, out, shapes

def check_where(where, shape):
    """`where` as a bool array broadcast to `shape` (possibly a read-only
    view).

    Raises
    ------
    TypeError
        `where` is not of bool dtype.
    ValueError
        `where` does not broadcast to `shape`.
    """
    w = np.asarray(where)
    if w.dtype != np.bool_:
        raise TypeError(f"`where` must be a boolean array, got dtype {w.dtype}")
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(
            f"`where` of shape {w.shape} does not broadcast to the input's "
            f"shape {tuple(shape)}") from None


def check_bool(value, name):
    """`value` as a bool: True, False or a NumPy bool only.

    Raises
    ------
    TypeError
        Anything else (an int, a string, None), naming `name`.
    """
    if value is True or value is False or isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"`{name}` must be a bool, got {value!r}")


def check_weights(b, shape):
    """logsumexp's weights `b` against an input of `shape`: returns
    ``(b_array, dtype, shape)``, `dtype` the dtype `b` takes part in the
    promotion with (None for a Python int, float or bool, which adapt to
    the input as in SciPy) and `shape` the broadcast shape of the input
    and `b` (as in SciPy, they broadcast together).

    Raises
    ------
    TypeError
        `b` is complex, or not numeric (object, strings, datetimes, ...).
    ValueError
        `b` and the input do not broadcast together.
    """
    weak = type(b) in (int, float, bool)
    arr = as_array(b, "b")
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"`b` must be real: got complex dtype {arr.dtype}")
    if kind not in "biuf" or (kind == "f" and arr.dtype.itemsize > 8):
        raise TypeError(
            f"`b` has unsupported dtype {arr.dtype}: expected a float (up to float64), "
            f"integer or bool dtype")
    try:
        full = np.broadcast_shapes(tuple(shape), arr.shape)
    except ValueError:
        raise ValueError(
            f"`b` of shape {arr.shape} does not broadcast against the input's "
            f"shape {tuple(shape)}") from None
    return arr, None if weak else arr.dtype, full


def check_out(out, shape, dtype, name="out"):
    """Check that `out` (if not None) can hold a result of `shape` and
    `dtype`: any strides, the exact dtype, writeable.

    Raises
    ------
    TypeError
        `out` is not an ndarray, or its dtype is not `dtype`.
    ValueError
        `out` has the wrong shape or is read-only.
    """
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"`{name}` must be a NumPy ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"`{name}` must have dtype {np.dtype(dtype)}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"`{name}` is read-only")


def check_same_shape(a, b, names):
    """Raise ValueError unless arrays `a` and `b` have the same shape;
    `names` is the pair of parameter names."""
    if a.shape != b.shape:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must have the same shape, got "
            f"{a.shape} and {b.shape}")


# ---------------------------------------------------------------- cross-entropy

def check_target(target, logits_shape, axis):
    """Classify `target` (an ndarray) as class indices or probabilities and
    check its shape against the logits' shape and class `axis`
    (non-negative).  Returns ``"index"`` or ``"prob"``.

    Raises
    ------
    TypeError
        `target` is bool, or of a dtype that is neither integer nor float16,
        float32, float64.
    ValueError
        `target` has the wrong shape for its kind.
    """
    kind = target.dtype.kind
    if kind in "iu":
        expected = tuple(logits_shape[:axis]) + tuple(logits_shape[axis + 1:])
        what = "class indices (integer dtype): the logits' shape without the class axis"
        ttype = "index"
    elif kind == "f" and target.dtype.itemsize <= 8:
        expected = tuple(logits_shape)
        what = "class probabilities (float dtype): the logits' shape"
        ttype = "prob"
    elif kind == "b":
        raise TypeError(
            "`target` has dtype bool: use an integer dtype for class indices "
            "or a float dtype for class probabilities")
    else:
        raise TypeError(
            f"`target` has unsupported dtype {target.dtype}: expected an integer "
            f"dtype (class indices) or float16/float32/float64 (probabilities)")
    if target.shape != expected:
        raise ValueError(
            f"`target` of shape {target.shape} does not fit logits of shape "
            f"{tuple(logits_shape)} with class axis {axis}: {what}, {expected}")
    return ttype


def check_ignore_index(ignore_index, target_type):
    """Return `ignore_index` as an int; with probability targets only the
    default -100 is allowed.

    Raises
    ------
    TypeError
        `ignore_index` is not an int.
    ValueError
        A value other than -100 with probability targets.
    """
    if not _is_int(ignore_index):
        raise TypeError(f"`ignore_index` must be an int, got {ignore_index!r}")
    ignore_index = operator.index(ignore_index)
    if target_type == "prob" and ignore_index != -100:
        raise ValueError(
            f"`ignore_index` is only for class index targets, got "
            f"ignore_index={ignore_index} with class probability targets")
    return ignore_index


def check_reduction(reduction):
    """Raise ValueError unless `reduction` is "mean", "sum" or "none"."""
    if not (isinstance(reduction, str) and reduction in REDUCTIONS):
        raise ValueError(
            f"`reduction` must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def check_label_smoothing(label_smoothing):
    """Return `label_smoothing` as a float in [0, 1].

    Raises
    ------
    TypeError
        Not a real number (a bool is not).
    ValueError
        Outside [0, 1] or NaN.
    """
    if type(label_smoothing) is not float and (  # a float: no ABC checks
            not isinstance(label_smoothing, (numbers.Real, np.floating, np.integer))
            or isinstance(label_smoothing, (bool, np.bool_))):
        raise TypeError(
            f"`label_smoothing` must be a float in [0, 1], got {label_smoothing!r}")
    value = float(label_smoothing)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1], got {label_smoothing!r}")
    return value


def check_xent_options(softcap, z_loss, return_lse, compute):
    """The cross-entropy's options as (softcap or None, z_loss as a float,
    return_lse as a bool).

    Raises
    ------
    TypeError
        `softcap` or `z_loss` not a real number (a bool is not),
        `return_lse` not a bool.
    ValueError
        `softcap` not > 0 and finite (also in the compute dtype, with its
        reciprocal), `z_loss` negative, NaN or infinite.
    """
    if softcap is not None:
        if not _real_scalar(softcap):
            raise TypeError(f"`softcap` must be a float, got {softcap!r}")
        c = float(softcap)
        with np.errstate(over="ignore", divide="ignore"):
            cc = np.dtype(compute).type(c)
            ok = 0.0 < c < np.inf and 0 < cc < np.inf and np.isfinite(1 / cc)
        if not ok:
            raise ValueError(f"`softcap` must be > 0 and finite (as {np.dtype(compute).name} "
                             f"too), got {softcap!r}")
        softcap = c
    if z_loss is None:
        z_loss = 0.0
    elif not _real_scalar(z_loss):
        raise TypeError(f"`z_loss` must be a float >= 0, got {z_loss!r}")
    else:
        value = float(z_loss)
        if not 0.0 <= value < np.inf:
            raise ValueError(f"`z_loss` must be >= 0 and finite, got {z_loss!r}")
        z_loss = value
    return softcap, z_loss, check_bool(return_lse, "return_lse")


def check_weight(weight, n_classes, dtype):
    """`weight` (array-like or None) as a 1-D array of `dtype` with one
    entry per class, or None.

    Raises
    ------
    TypeError
        `weight` is not of a real numeric dtype (float16/32/64, integer or
        bool).
    ValueError
        `weight` is not 1-D of length `n_classes`.
    TypeError
        `weight` is a masked array.
    """
    if weight is None:
        return None
    w = as_array(weight, "weight")
    result_dtypes(w.dtype, "weight")
    if w.shape != (n_classes,):
        raise ValueError(
            f"`weight` must be 1-D with one entry per class ({n_classes}), "
            f"got shape {w.shape}")
    return w.astype(dtype)


def check_target_range(target, n_classes, ignore_index):
    """Raise IndexError naming the first class index of `target` (an
    integer ndarray) outside ``[0, n_classes)`` that is not
    `ignore_index`."""
    bad = (target < 0) | (target >= n_classes)
    if bad.any():
        bad &= target != ignore_index
        if bad.any():
            value = target[bad].flat[0]
            raise IndexError(
                f"`target` holds class index {int(value)}, out of range for "
                f"{n_classes} classes (and not ignore_index={ignore_index})")


# ---------------------------------------------------------------- fused options

class Fused:
    """The checked fused options of one call (see :func:`check_fused`)."""
    __slots__ = ("axis", "scale", "softcap", "bias", "where", "causal", "sink")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


def _real_scalar(value):
    return (isinstance(value, (numbers.Real, np.floating, np.integer))
            and not isinstance(value, (bool, np.bool_)))


def _per_row(value, name, shape, k, compute, allow_neg_inf):
    """`scale` / `sink`: a float, or an array broadcastable to the reduced
    shape (`shape` without axis k; an array of `shape`'s ndim with length 1
    along k also works).  Returns a float, or an array of `shape` with
    length 1 along k (a broadcast view, compute dtype)."""
    if _real_scalar(value) or (isinstance(value, np.ndarray) and value.ndim == 0
                               and value.dtype.kind in "fiu"):
        v = float(value)
        if v != v or v == np.inf or (v == -np.inf and not allow_neg_inf):
            raise ValueError(f"`{name}` must be finite{' or -inf' if allow_neg_inf else ''}, "
                             f"got {value!r}")
        return v
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is Ellipsis:
        raise TypeError(f"`{name}` must be a float or an array of floats, got {value!r}")
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"`{name}` must be a float or an array of floats, got dtype {a.dtype}")
    kshape = tuple(1 if d == k else s for d, s in enumerate(shape))
    reduced = tuple(s for d, s in enumerate(shape) if d != k)
    try:
        if a.ndim == len(shape) and a.shape[k] == 1:
            b = np.broadcast_to(a, kshape)
        else:
            b = np.expand_dims(np.broadcast_to(a, reduced), k)
    except ValueError:
        raise ValueError(f"`{name}` of shape {a.shape} does not broadcast to the reduced "
                         f"shape {reduced}") from None
    if a.size and a.dtype.kind == "f":
        bad = np.isnan(a) | (a == np.inf) if allow_neg_inf else ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"`{name}` must be finite{' or -inf' if allow_neg_inf else ''}, "
                             f"got {a[bad].flat[0]!r} in it")
    return b.astype(compute, copy=False)


def check_fused(shape, axis, compute, *, scale=None, softcap=None, bias=None, where=None,
                causal=None, sink=None):
    """Check the fused options of softmax / log_softmax / logsumexp for an
    input of `shape` computed in `compute`.  Returns a :class:`Fused`:
    axis (one int), scale (a float, or an array of `shape` with length 1
    along axis, compute dtype), softcap (a float or None), bias (None or an
    array of `shape`'s ndim broadcastable to it, compute dtype, not
    broadcast), where (None or a bool array broadcastable to it, likewise),
    causal (None or the offset k: query i keeps keys j <= i + k), sink (None,
    a float or an array like scale).

    Raises
    ------
    TypeError
        An option of the wrong type (a bool or a str for a number, a bias of
        a dtype that is not a float, a non-bool `where`, a `causal` that is
        neither a bool nor an int).
    ValueError
        `softcap` <= 0 or not finite, a non-finite `scale`, a NaN or +inf
        `sink`, an array that does not broadcast, `causal` on a 1-d input or
        along an axis that is not the last, several axes.
    """
    ndim = len(shape)
    axes = normalize_axis(axis, ndim)
    if len(axes) != 1:
        raise ValueError(f"the fused options (scale, softcap, bias, causal, sink) take one "
                         f"axis, got axis={axis!r}")
    k = axes[0]
    out = Fused(axis=k, scale=1.0, softcap=None, bias=None, where=None, causal=None, sink=None)
    if scale is not None:
        out.scale = _per_row(scale, "scale", shape, k, compute, False)
    if softcap is not None:
        if not _real_scalar(softcap):
            raise TypeError(f"`softcap` must be a float, got {softcap!r}")
        c = float(softcap)
        if not (0.0 < c < np.inf):
            raise ValueError(f"`softcap` must be > 0 and finite, got {softcap!r}")
        out.softcap = c
    if bias is not None:
        if isinstance(bias, (str, bytes)) or isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"`bias` must be an array of floats, got {bias!r}")
        b = np.asarray(bias)
        if b.dtype.kind != "f":
            raise TypeError(f"`bias` must be an array of float16, float32 or float64, "
                            f"got dtype {b.dtype}")
        try:
            np.broadcast_shapes(b.shape, tuple(shape))
            if b.ndim > ndim or np.broadcast_shapes(b.shape, tuple(shape)) != tuple(shape):
                raise ValueError
        except ValueError:
            raise ValueError(f"`bias` of shape {b.shape} does not broadcast to the input's "
                             f"shape {tuple(shape)}") from None
        out.bias = b.reshape((1,) * (ndim - b.ndim) + b.shape).astype(compute, copy=False)
    if where is not None:
        w = np.asarray(where)
        if w.dtype != np.bool_:
            raise TypeError(f"`where` must be a boolean array, got dtype {w.dtype}")
        try:
            if w.ndim > ndim or np.broadcast_shapes(w.shape, tuple(shape)) != tuple(shape):
                raise ValueError
        except ValueError:
            raise ValueError(f"`where` of shape {w.shape} does not broadcast to the input's "
                             f"shape {tuple(shape)}") from None
        out.where = w.reshape((1,) * (ndim - w.ndim) + w.shape)
    if causal is not None and causal is not False:
        if causal is True or isinstance(causal, np.bool_):
            if not causal:
                causal = None
        elif not _is_int(causal):
            raise TypeError(f"`causal` must be a bool or an int, got {causal!r}")
        if causal is not None:
            if ndim < 2:
                raise ValueError(f"`causal` needs an input of 2 or more dimensions (queries, "
                                 f"keys), got shape {tuple(shape)}")
            if k != ndim - 1:
                raise ValueError(f"`causal` works along the last axis only, got axis={axis!r}")
            out.causal = (shape[-1] - shape[-2]) if causal is True or isinstance(
                causal, np.bool_) else int(causal)
    if sink is not None:
        out.sink = _per_row(sink, "sink", shape, k, compute, True)
    return out


def fused_given(scale, softcap, bias, causal, sink):
    """Whether any fused option (other than `where`) is given."""
    return not (scale is None and softcap is None and bias is None
                and (causal is None or causal is False) and sink is None)


_FUSED_NAMES = "the fused options (scale, softcap, bias, causal, sink)"


def fused_options(scale, softcap, bias, causal, sink, dtype=None):
    """The fused options as a dict, None when none is given (causal=False
    is no mask), so that such calls keep their paths; dtype= does not
    combine with them (TypeError)."""
    if not fused_given(scale, softcap, bias, causal, sink):
        return None
    if dtype is not None:
        raise TypeError(f"dtype={dtype!r} is not taken together with {_FUSED_NAMES} yet")
    return dict(scale=scale, softcap=softcap, bias=bias, causal=causal, sink=sink)


def logsumexp_path(options, where, b, return_sign, dtype):
    """Which logsumexp a call is: "weighted" (b or return_sign), "fused"
    (an option or where) or "plain"; TypeError, naming the parameters, for
    the combinations not taken."""
    if b is not None or return_sign is not False:
        if options is not None or where is not None:
            raise TypeError(f"`b` and `return_sign` are not taken together with `where` or "
                            f"{_FUSED_NAMES}")
        if dtype is not None:
            raise TypeError(f"dtype={dtype!r} is not taken together with `b` or "
                            "`return_sign` (their result has the weighted sum's dtype)")
        return "weighted"
    if options is not None or where is not None:
        if dtype is not None:
            raise TypeError(f"dtype={dtype!r} is not taken together with `where` or "
                            f"{_FUSED_NAMES} yet")
        return "fused"
    return "plain"
