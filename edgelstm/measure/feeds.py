"""Representative inputs of a whole ONNX graph: ``--calibration FEEDS`` for its dynamic int8.

A whole graph's inputs are whatever its exporter made them (images, token ids, states), not
the [N, T, I] sequences of :mod:`edgelstm.measure.data`, so they are given as the graph
takes them: a ``.npz`` whose keys are the graph's input names, each array
``[N, *input shape]`` (sample ``k`` is ``{name: array[k]}``, fed as-is: the input shape
includes the graph's batch dimension, so a batch-1 image model's samples are stored
``[N, 1, C, H, W]``), or a ``.npy`` ``[N, *input shape]`` for a graph with one input. Every
input must be given (states too: a graph's own zero state is ``np.zeros``), with the same N;
static dimensions must match, dynamic ones are free (one value per array). Arrays are cast
to the input's dtype (integers must hold whole numbers). The dynamic-int8 weight scheme is
then measured on these samples instead of seeded N(0, 1) inputs
(:func:`edgelstm.targets.onnx.scheme_choice.choose_scheme`). Every problem is a
:class:`~edgelstm.errors.CalibrationError` that lists the graph's inputs and shapes.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from edgelstm.errors import CalibrationError

if TYPE_CHECKING:
    import onnx

Feeds: TypeAlias = np.ndarray | Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]]
"""What :func:`check_feeds` takes: one ``[N, *shape]`` array (a one-input graph), a mapping
input name -> ``[N, *shape]``, or ready samples (a list of {input name: array})."""


def graph_inputs(model: onnx.ModelProto) -> list[tuple[str, list[int | str], np.dtype]]:
    """(name, shape — a dim's size or its symbolic name / "?" —, numpy dtype) of each graph
    input that is not an initializer."""
    import onnx

    inits = {i.name for i in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims: list[int | str] = [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
            for d in tt.shape.dim
        ]
        out.append((vi.name, dims, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))))
    return out


def _listing(inputs: list[tuple[str, list[int | str], np.dtype]]) -> str:
    shapes = ", ".join(f"{n!r} [{', '.join(map(str, s))}] {t}" for n, s, t in inputs)
    return (
        f"the graph's inputs: {shapes}; give a .npz with one array per input, named as the "
        "input, [N, *input shape] (one sample per row, the shape including the batch "
        "dimension), or a .npy [N, *input shape] for a graph with one input"
    )


def load_feeds(path: str | os.PathLike[str], model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
    """Read ``path`` (.npz of input name -> [N, *shape], or .npy for a one-input graph) and
    check it against ``model``'s inputs: N samples, one feed dict each."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz") or not p.is_file():
        raise CalibrationError(
            f"{p}: calibration inputs must be an existing .npy or .npz file; "
            + _listing(graph_inputs(model))
        )
    try:
        if suffix == ".npy":
            data: Feeds = np.load(p, allow_pickle=False)
        else:
            with np.load(p, allow_pickle=False) as archive:
                data = {k: archive[k] for k in archive.files}
    except ValueError as exc:
        why = "holds Python objects (pickled data)" if "pickle" in str(exc).lower() else exc
        raise CalibrationError(
            f"{p}: not a readable numpy file ({why}); save numeric arrays"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CalibrationError(f"{p}: not a readable numpy file ({exc})") from None
    return check_feeds(data, model, where=str(p))


def check_feeds(
    data: Feeds, model: onnx.ModelProto, where: str = "calibration inputs"
) -> list[dict[str, np.ndarray]]:
    """``data`` (:data:`Feeds`) as checked samples of ``model``: one {input: array} each, every
    array of the input's rank, static dims and dtype."""
    inputs = graph_inputs(model)
    if isinstance(data, (list, tuple)):
        samples = [dict(s) for s in data]
        if not samples:
            raise CalibrationError(f"{where}: no samples; " + _listing(inputs))
        out = []
        for k, s in enumerate(samples):
            batch = {n: np.asarray(v)[None] for n, v in s.items()}
            out += _split(batch, inputs, f"{where}[{k}]")
        return out
    if not isinstance(data, Mapping):
        arr = np.asarray(data)
        if len(inputs) != 1:
            raise CalibrationError(
                f"{where}: one array, but the graph has {len(inputs)} inputs; " + _listing(inputs)
            )
        data = {inputs[0][0]: arr}
    return _split(dict(data), inputs, where)


def _split(
    data: dict[str, np.ndarray], inputs: list[tuple[str, list[int | str], np.dtype]], where: str
) -> list[dict[str, np.ndarray]]:
    names = [n for n, _, _ in inputs]
    missing = [n for n in names if n not in data]
    unknown = sorted(set(data) - set(names))
    if missing or unknown:
        parts = [f"no array for {missing}"] if missing else []
        parts += [f"no graph input named {unknown}"] if unknown else []
        raise CalibrationError(f"{where}: {'; '.join(parts)}; " + _listing(inputs))
    counts: set[int] = set()
    cast: dict[str, np.ndarray] = {}
    for name, shape, dtype in inputs:
        arr = np.asarray(data[name])
        if arr.dtype.kind not in "biuf":
            raise CalibrationError(
                f"{where}: {name!r} is not numeric ({arr.dtype}); " + _listing(inputs)
            )
        if arr.ndim != len(shape) + 1 or any(
            isinstance(d, int) and d != a for d, a in zip(shape, arr.shape[1:], strict=False)
        ):
            raise CalibrationError(
                f"{where}: {name!r} has shape {list(arr.shape)}, expected [N, "
                f"{', '.join(map(str, shape))}]; " + _listing(inputs)
            )
        if arr.shape[0] == 0:
            raise CalibrationError(f"{where}: {name!r} holds no samples (N = 0)")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise CalibrationError(f"{where}: {name!r} holds NaN or inf; give finite inputs")
        out = arr.astype(dtype)
        if dtype.kind != "f" and not np.array_equal(out, arr):
            raise CalibrationError(
                f"{where}: {name!r} is {dtype} in the graph, but its values are not all "
                f"{dtype} (fractions or out of range); store them as {dtype}"
            )
        counts.add(arr.shape[0])
        cast[name] = out
    if len(counts) > 1:
        sizes = ", ".join(f"{n!r}: {cast[n].shape[0]}" for n in names)
        raise CalibrationError(
            f"{where}: the arrays hold different numbers of samples ({sizes}); sample k is "
            "row k of every array, so N must be the same for all; " + _listing(inputs)
        )
    return [{n: cast[n][k] for n in names} for k in range(counts.pop())]


__all__ = ["Feeds", "check_feeds", "graph_inputs", "load_feeds"]
