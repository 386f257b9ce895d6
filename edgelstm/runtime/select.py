"""One small interface over every runtime: ``open_runner(path, backend, threads)``.

verify, bench and report only ever see a :class:`Runner`: float input in the model's own
layout, float (dequantized) outputs, ``reset()`` to zero the state. Hiding the differences
here keeps them honest: a full-int8 model is fed and read through its own input/output
quantization (read from the file by :mod:`edgelstm.inspect`), so its error includes
exactly the rounding a user would see; and every TFLite run starts from zero state, because
the fused LSTM keeps ``output_state``/``cell_state`` as variable tensors that persist
across ``invoke()`` (two invokes of T steps would silently behave like one of 2T).

Backends: ``litert`` (ai-edge-litert's classic Interpreter; its CompiledModel refuses
variable tensors), ``tf`` (``tf.lite.Interpreter``, imports TensorFlow), ``tflite-runtime``
(when importable; needs numpy<2), ``tflm`` (TFLite Micro's interpreter, the ``tflm``
extra; :mod:`edgelstm.runtime.tflm`: fixed shapes, smallest arena) and ``ort``
(onnxruntime). ``auto`` picks litert for .tflite and ort for .onnx. The edgelstm runners
(:mod:`edgelstm.runtime.litert`, :mod:`edgelstm.runtime.ort`) are used when present; a
plain-interpreter adapter here covers
tflite-runtime and any runner that is not there yet.

Crash probe: LiteRT and onnxruntime are C++, and a corrupted or adversarial file can make
them segfault (e.g. a fused LSTM whose required ``input_gate_bias`` is -1), which would kill
the whole process with no message. So ``open_runner`` first loads, allocates and invokes the
file once on zeros in a child process (:func:`edgelstm.runtime.sandbox.run_isolated`): a crash or
hang there becomes a :class:`ModelFileError`, and only a file that survived is loaded here.
The child imports only numpy and the runtime (not edgelstm, never TensorFlow: the ``tf``
backend is probed with LiteRT, which has the same kernels), about 0.4 s; each file (path,
size, mtime) is probed once per process. Python-level errors in the child are ignored: the
in-process load reports them with its usual messages. ``probe=False`` skips it, for files
edgelstm just wrote itself (demo, optimizer) and for code already in a child process.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import InputDataError, ModelFileError, UnsupportedError
from edgelstm.inspect import ModelInfo, TensorInfo, inspect_model
from edgelstm.quant.tensor import from_codes, to_codes

BACKENDS: tuple[str, ...] = ("auto", "litert", "tf", "tflite-runtime", "tflm", "ort")

# Run by exec() in the probe child, so that the child imports no edgelstm (~0.4 s saved).
# Globals: path, runtime ("ort" or an Interpreter module), threads.
_PROBE_CODE = """
import numpy as np
try:
    if runtime == "ort":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        kinds = {"float": "float32", "double": "float64", "float16": "float16"}
        feeds = {}
        for t in session.get_inputs():
            kind = t.type[len("tensor(") : -1] if t.type.startswith("tensor(") else "?"
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in t.shape]
            feeds[t.name] = np.zeros(shape, kinds.get(kind, kind))
        session.run(None, feeds)
    else:
        import importlib
        cls = importlib.import_module(runtime).Interpreter
        interpreter = cls(model_path=path, num_threads=threads)
        interpreter.allocate_tensors()
        for t in interpreter.get_input_details():
            interpreter.set_tensor(t["index"], np.zeros(t["shape"], t["dtype"]))
        interpreter.invoke()
except Exception:
    pass  # reported by the in-process load, with edgelstm's own messages
"""
_PROBED: set[tuple[str, int, int, str]] = set()


def probe_file(path: Path, backend: str, threads: int = 1) -> None:
    """Load, allocate and invoke ``path`` once in a child process (see the module doc).

    Raises :class:`ModelFileError` when the runtime crashes or hangs on it; returns quietly
    otherwise (also when the runtime merely refuses the file: the caller reports that).
    """
    from edgelstm.runtime.sandbox import DEFAULT_TIMEOUT, run_isolated

    if backend == "ort":
        runtime, label = "ort", "onnxruntime"
    else:
        runtime = (
            "tflite_runtime.interpreter"
            if backend == "tflite-runtime"
            else ("ai_edge_litert.interpreter")
        )
        label = "the TFLite interpreter"
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, runtime)
    except OSError:
        return  # the in-process load says what is wrong with the path
    if key in _PROBED:
        return
    scope = {"path": str(path), "runtime": runtime, "threads": threads}
    run_isolated(
        functools.partial(exec, _PROBE_CODE),
        scope,
        timeout=DEFAULT_TIMEOUT,
        label=label,
        subject=str(path),
        forward_stderr=False,
    )
    _PROBED.add(key)


def _interpreter_class(backend: str) -> Any:
    """The Interpreter class of a TFLite backend (UnsupportedError when not installed)."""
    if backend == "litert":
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    if backend == "tf":
        try:
            import tensorflow as tf
        except ImportError:
            raise UnsupportedError("backend tf", "tensorflow is not installed") from None
        return tf.lite.Interpreter
    try:
        module = importlib.import_module("tflite_runtime.interpreter")
    except ImportError as exc:
        raise UnsupportedError(
            "backend tflite-runtime",
            f"not importable ({exc}); pip install tflite-runtime (2.14 needs numpy<2)",
        ) from None
    return module.Interpreter


class InterpreterRunner:
    """A TFLite model on a classic Interpreter: set input, invoke, read outputs as stored.

    Used for tflite-runtime (which has no edgelstm runner) and when
    :mod:`edgelstm.runtime.litert` is missing. Quantization is left to :class:`Runner`.
    """

    def __init__(self, path: Path, num_threads: int, backend: str) -> None:
        cls = _interpreter_class(backend)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
                self.interpreter = cls(model_path=str(path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError, AttributeError, ImportError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{path}: {backend} cannot load the model: {first}") from None
        details = self.interpreter.get_input_details()
        self._input = details[0]
        self._outputs = [d["index"] for d in self.interpreter.get_output_details()]
        self._time_major, self._states = _state_tensors(path)
        self._zeroed = [d for d in details[1:] if d["index"] in self._states]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        interp = self.interpreter
        if tuple(self._input["shape"]) != x.shape:
            self._resize(x.shape)
        interp.reset_all_variables()
        interp.set_tensor(self._input["index"], x)
        for d in self._zeroed:  # an unfused graph's initial-state inputs
            interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        interp.invoke()
        return [interp.get_tensor(i) for i in self._outputs]

    def _resize(self, shape: tuple[int, ...]) -> None:
        """Resize the input and every [batch, width] state tensor to ``shape``'s batch."""
        interp = self.interpreter
        batch = shape[1 if self._time_major else 0] if len(shape) == 3 else shape[0]
        try:
            interp.resize_tensor_input(self._input["index"], list(shape), strict=False)
            for index in self._states:
                width = int(interp.get_tensor(index).shape[-1])
                interp.resize_tensor_input(index, [batch, width], strict=False)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InputDataError(
                f"input: cannot use shape {list(shape)} with this model ({exc})"
            ) from None
        details = {d["index"]: d for d in interp.get_input_details()}
        self._input = details[self._input["index"]]
        self._zeroed = [details[d["index"]] for d in self._zeroed]

    def reset(self) -> None:
        self.interpreter.reset_all_variables()


def _state_tensors(path: Path) -> tuple[bool, list[int]]:
    """(time_major, indices of the state tensors) of a TFLite file: the fused ops' h/c
    variables, or an unfused graph's initial-state inputs; (False, []) if unreadable."""
    try:
        from edgelstm.runtime.litert import _scan_all, reset_variables

        data = path.read_bytes()
        pairs, time_major, _, inputs, state_io = _scan_all(data)
        fused = [i for pair in pairs for i in pair]
        resets = [i for extra in reset_variables(data, fused).values() for i in extra]
    except Exception:  # noqa: BLE001 - no schema or a file the interpreter will judge
        return False, []
    by_name = dict(inputs or [])
    unfused = [by_name.get(e.get(k)) for e in state_io for k in ("initial_h", "initial_c")]
    return time_major, fused + resets + [i for i in unfused if i is not None]


def _edgelstm_tflite_runner(path: Path, threads: int, backend: str) -> Any | None:
    """The TFLite engineer's LiteRTRunner, when that module exists."""
    try:
        module = importlib.import_module("edgelstm.runtime.litert")
    except ImportError:
        return None
    cls = getattr(module, "LiteRTRunner", None)
    if cls is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        return cls(path, num_threads=threads, backend=backend)


def _quantize(x: np.ndarray, t: TensorInfo) -> np.ndarray:
    q = t.quantization or {"scale": [1.0], "zero_point": [0]}
    scale, zp = float(q["scale"][0]), int(q["zero_point"][0])
    return to_codes(x, scale, zp, t.dtype)


def _dequantize(y: np.ndarray, t: TensorInfo | None) -> np.ndarray:
    if y.dtype.kind not in "iu" or t is None or not t.quantization:
        return np.asarray(y, dtype=np.float32)
    scale, zp = float(t.quantization["scale"][0]), int(t.quantization["zero_point"][0])
    return from_codes(y, scale, zp, "float32").astype(np.float32)


class RunOutputs(list):
    """What :meth:`Runner.run` returns: the outputs (a list, as always) plus ``states``, the
    final ``[layer][direction] = (h, c)`` (float32, [B, width]) or None."""

    states: list[list[Any]] | None = None


class Runner:
    """A loaded model: ``run(x)`` float in -> float outputs out, each run from zero state.

    ``info`` is the model's :class:`ModelInfo` (input shape/dtype/quantization, time_major);
    ``backend`` the runtime actually used; ``impl`` the underlying runner.
    """

    def __init__(self, path: Path, backend: str, threads: int, info: ModelInfo, impl: Any):
        self.path = path
        self.backend = backend
        self.threads = threads
        self.info = info
        self.impl = impl
        self.input: TensorInfo = info.inputs[0]
        self._raw_input = np.dtype(self.input.dtype).kind in "iu"

    @property
    def input_shape(self) -> list[int]:
        """Input shape with -1 for dynamic dimensions."""
        return [d if isinstance(d, int) and d > 0 else -1 for d in self.input.shape]

    @property
    def output_scale(self) -> float | None:
        """Scale of the first output when it is quantized (one LSB), else None."""
        q = self.info.output_quantization
        return float(q["scale"][0]) if q else None

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """``x`` as the runtime wants it (quantized for an integer input)."""
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim != len(self.input_shape):
            raise InputDataError(
                f"input: expected rank {len(self.input_shape)} {self.input_shape}, "
                f"found shape {list(arr.shape)}"
            )
        fixed = self.input_shape
        if any(d > 0 and d != n for d, n in zip(fixed, arr.shape, strict=True)):
            raise InputDataError(
                f"input: the model takes shape {fixed} (-1 = any), found {list(arr.shape)}"
            )
        return _quantize(arr, self.input) if self._raw_input else np.ascontiguousarray(arr)

    def run_prepared(self, x: np.ndarray) -> list[np.ndarray]:
        """Run an already :meth:`prepare`-d input (what bench times); raw outputs."""
        self.impl.reset()
        return self.impl.run(x)

    def run(self, x: np.ndarray, initial_state: Any = None) -> RunOutputs:
        """Run one batch; outputs dequantized to float32, in the file's order.

        Starts from zero state, or from ``initial_state``: ``[layer][direction] = (h, c)``
        (float; h [B, P], c [B, N]; None entries stay zero) or ``(h, c)`` for a one-layer,
        one-direction model. The returned list's ``states`` holds the final states in that
        same ``[layer][direction] = (h, c)`` float32 form, or None where the file or backend
        does not expose them (tflite-runtime).
        """
        arr = self.prepare(x)
        if initial_state is None:
            outs = self.run_prepared(arr)
        else:
            outs = self._run_from(arr, initial_state)
        result = RunOutputs(self._dequantize(k, np.asarray(y)) for k, y in enumerate(outs))
        result.states = self._final_states(outs)
        return result

    def _state_layout(self) -> list[int]:
        """Directions per layer of the file's LSTM states."""
        from edgelstm.runtime.states import directions_per_layer, onnx_layout

        if self.backend == "ort":
            return onnx_layout(self.impl.input_names + self.impl.output_names)
        count = len(getattr(self.impl, "_state_io", None) or getattr(self.impl, "states", []))
        return directions_per_layer(self.info, count)

    def _run_from(self, x: np.ndarray, initial_state: Any) -> list[np.ndarray]:
        from edgelstm.runtime.states import normalize, pad_h

        if isinstance(self.impl, InterpreterRunner) or self.backend == "tflm":
            raise UnsupportedError(
                f"initial_state on backend {self.backend}",
                "this backend runs from zero state only; use --backend litert or tf",
            )
        nested = normalize(initial_state, self._state_layout())
        if self.backend == "ort":
            return self.impl.run(x, nested)
        flat = [pair for layer in nested for pair in layer]
        if self._padded():
            flat = [pad_h(pair, self.impl, k) for k, pair in enumerate(flat)]
        return self.impl.run(x, flat)

    def _padded(self) -> bool:
        """A full-int8 file whose projection was padded to n_cell (:mod:`edgelstm.quant.pad`):
        its h state is wider than the source's."""
        meta = self.info.metadata.get("edgelstm")
        prov = meta.get("provenance") if isinstance(meta, dict) else None
        return isinstance(prov, dict) and "int8_projection_padding" in prov

    def _final_states(self, outs: list[np.ndarray]) -> list[list[Any]] | None:
        from edgelstm.runtime.states import group, onnx_finals

        if self.backend == "ort":
            return onnx_finals(self.impl.output_names, outs)
        float_state = getattr(self.impl, "float_state", None)
        if float_state is None or self._padded():
            return None  # padded h is not the source's state (return_state is refused there)
        flat = float_state()
        return group(flat, self._state_layout()) if flat else None

    def _dequantize(self, k: int, y: np.ndarray) -> np.ndarray:
        """Output ``k`` as float; its quantization is the same-position graph output's when
        that one has y's dtype, else the first graph output of that dtype (a runner may
        order outputs by signature rather than by subgraph)."""
        infos = self.info.outputs
        same = [t for t in infos if t.dtype == y.dtype.name]
        t = infos[k] if k < len(infos) and infos[k].dtype == y.dtype.name else None
        return _dequantize(y, t or (same[0] if same else None))

    def reset(self) -> None:
        self.impl.reset()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            close = getattr(self.impl, "close", None)
            if close is not None:
                close()
        self.impl = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_runner(
    path: str | os.PathLike[str], backend: str = "auto", threads: int = 1, *, probe: bool = True
) -> Runner:
    """Load ``path`` (.tflite / .onnx) on ``backend`` with ``threads`` intra-op threads.

    ``probe``: first run the file once in a child process, so that a runtime crash on a
    corrupted or adversarial file is a :class:`ModelFileError` instead of killing this
    process (see the module doc); pass False for files edgelstm has just written itself.
    """
    p = Path(path)
    if backend not in BACKENDS:
        raise UnsupportedError("runtime", f"backend must be one of {', '.join(BACKENDS)}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputDataError(f"threads: expected a positive integer, found {threads!r}")
    info = inspect_model(p)
    if not info.inputs:
        raise ModelFileError(f"{p}: the model has no inputs")
    if info.format == "onnx":
        if backend not in ("auto", "ort"):
            raise UnsupportedError(f"backend {backend}", "runs .tflite files only; use ort")
        from edgelstm.runtime.ort import OrtRunner

        if probe:
            probe_file(p, "ort", threads)
        return Runner(p, "ort", threads, info, OrtRunner(p, num_threads=threads))
    if backend == "ort":
        raise UnsupportedError("backend ort", "runs .onnx files only")
    backend = "litert" if backend == "auto" else backend
    if backend == "tflm":  # refuses what TFLM cannot run; crash-safe arena search in a child
        from edgelstm.runtime.tflm import TFLMRunner

        return Runner(p, backend, threads, info, TFLMRunner(p))
    if probe:
        probe_file(p, backend, threads)
    impl = None
    try:
        if backend != "tflite-runtime":
            impl = _edgelstm_tflite_runner(p, threads, backend)
        if impl is None:
            impl = InterpreterRunner(p, threads, backend)
    except ModelFileError as exc:
        text = str(exc)
        raise ModelFileError(text if str(p) in text else f"{p}: {text}") from None
    return Runner(p, backend, threads, info, impl)
