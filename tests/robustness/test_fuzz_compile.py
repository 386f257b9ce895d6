"""Hypothesis: random specs, weights, model structures and options, compiled and run.

Property: compiling a random :class:`LSTMModel` either succeeds, and then the emitted model
run on its real interpreter (onnxruntime / LiteRT) matches :func:`reference_model` in every
output (and final state), or it is refused with an :class:`UnsupportedError` that names the
target and the reason, exactly when the target documents that refusal (TFLite: cell
activation "linear"/"sigmoid"; ONNX: quantize="int8"). Dynamic-range quantized models must
run and stay finite. :data:`PROPERTIES` is shared with ``tools/fuzz_long.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from _fuzz import Property, as_param, run_property
from hypothesis import strategies as st

from edgelstm import DenseHead, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, reference_model
from edgelstm.errors import SpecError, UnsupportedError
from edgelstm.ir.options import CompileOptions
from edgelstm.ir.spec import ACTIVATIONS

TFLITE_REFUSED = ("linear", "sigmoid")
"""Cell activations the fused TFLite kernel cannot compute (edgelstm.targets.tflite.lstm_op)."""
REL_TOL = 1e-4
"""float32 runtimes vs the float64 reference, relative to max(1, |reference|)."""


# -- strategies ----------------------------------------------------------------------------


@st.composite
def specs(draw: Any, n_input: int, activations: tuple[str, ...] = ACTIVATIONS) -> LSTMSpec:
    n_cell = draw(st.integers(1, 6))
    projection = draw(st.booleans())
    return LSTMSpec(
        n_input=n_input,
        n_cell=n_cell,
        n_output=draw(st.integers(1, 5)) if projection else n_cell,
        cifg=draw(st.booleans()),
        peephole=draw(st.booleans()),
        projection=projection,
        projection_bias=projection and draw(st.booleans()),
        layer_norm=draw(st.booleans()),
        cell_clip=draw(st.sampled_from((0.0, 0.0, 0.3, 1.0, 3.0))),
        proj_clip=draw(st.sampled_from((0.0, 0.5, 2.0))) if projection else 0.0,
        activation=draw(st.sampled_from(activations)),
    )


@st.composite
def weights_for(draw: Any, spec: LSTMSpec) -> LSTMWeights:
    seed = draw(st.integers(0, 2**16))
    kind = draw(st.sampled_from(("glorot", "glorot", "large", "zeros")))
    if kind == "zeros":
        return LSTMWeights(
            spec, {k: np.zeros_like(v) for k, v in LSTMWeights.random(spec).tensors.items()}
        )
    return LSTMWeights.random(spec, seed=seed, scale=2.0 if kind == "large" else None)


@st.composite
def models(draw: Any, activations: tuple[str, ...] = ACTIVATIONS) -> LSTMModel:
    n_in = draw(st.integers(1, 4))
    layers = []
    for _ in range(draw(st.integers(1, 2))):
        forward = draw(weights_for(draw(specs(n_in, activations))))
        if draw(st.booleans()):
            backward = draw(weights_for(draw(specs(n_in, activations))))
            layer = LSTMLayer(forward, backward)
        else:
            mode = draw(st.sampled_from(("forward", "forward", "go_backwards", "reverse")))
            layer = LSTMLayer(
                forward, go_backwards=mode == "go_backwards", reverse=mode == "reverse"
            )
        layers.append(layer)
        n_in = layer.n_output
    head = None
    if draw(st.booleans()):
        units = draw(st.integers(1, 3))
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        head = DenseHead(
            rng.normal(size=(units, n_in)),
            rng.normal(size=units),
            draw(st.sampled_from(("linear", "softmax"))),
        )
    return LSTMModel(
        tuple(layers),
        head=head,
        return_sequences=draw(st.booleans()),
        return_state=draw(st.booleans()),
        time_major=draw(st.booleans()),
    )


@dataclass(frozen=True)
class Case:
    model: LSTMModel
    options: CompileOptions
    x: np.ndarray

    @property
    def layout_model(self) -> LSTMModel:
        """The model with the layout the emitted file uses (options.time_major wins)."""
        if self.options.time_major is None:
            return self.model
        return dataclasses.replace(self.model, time_major=self.options.time_major)


@st.composite
def cases(draw: Any, activations: tuple[str, ...] = ACTIVATIONS, quantize: str = "none") -> Case:
    model = draw(models(activations))
    batch = draw(st.sampled_from((None, 1, 2, 3)))
    steps = draw(st.integers(1, 6))
    options = CompileOptions(
        batch=batch,
        seq_len=draw(st.sampled_from((None, steps))),
        time_major=draw(st.sampled_from((None, None, True, False))),
        quantize=quantize,
        source="fuzz",
    )
    b = batch if batch is not None else draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from((0.1, 1.0, 1.0, 5.0)))
    tm = options.time_major if options.time_major is not None else model.time_major
    shape = (steps, b, model.n_input) if tm else (b, steps, model.n_input)
    return Case(model, options, (rng.normal(size=shape) * scale).astype(np.float32))


# -- checks --------------------------------------------------------------------------------


def _expected(case: Case, all_layers: bool) -> list[np.ndarray]:
    ref = reference_model(case.layout_model, case.x)
    out = [ref.output]
    if all_layers:  # ONNX: final (h, c) of every direction of every layer
        for layer in ref.states:
            for h, c in layer:
                out += [h, c]
    elif case.model.return_state:  # TFLite: the last layer's, after the output
        for h, c in ref.states[-1]:
            out += [h, c]
    return out


def _assert_close(got: list[np.ndarray], want: list[np.ndarray], case: Case) -> None:
    assert len(got) == len(want), (len(got), len(want))
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape, (k, g.shape, w.shape)
        assert np.all(np.isfinite(g)), f"output {k} not finite"
        if w.size:
            err = float(np.max(np.abs(g.astype(np.float64) - w)))
            tol = REL_TOL * max(1.0, float(np.max(np.abs(w))))
            assert err <= tol, f"output {k}: error {err:.3g} > {tol:.3g}; {case.model.describe()}"


def check_onnx(case: Case) -> None:
    """Float ONNX: compiles (no float refusal exists) and matches the reference."""
    from edgelstm.runtime.ort import OrtRunner
    from edgelstm.targets.onnx import to_onnx

    proto = to_onnx(case.model, case.options)
    got = OrtRunner(proto.SerializeToString()).run(case.x)
    _assert_close(got, _expected(case, all_layers=True), case)


def _tflite_refusal(model: LSTMModel) -> str | None:
    for layer in model.layers:
        for w in layer.directions:
            if w.spec.activation in TFLITE_REFUSED:
                return w.spec.activation
    return None


def check_tflite(case: Case) -> None:
    """Float TFLite: refused exactly for the documented activations, else matches."""
    from edgelstm.runtime.litert import LiteRTRunner
    from edgelstm.targets.tflite import to_tflite

    refused = _tflite_refusal(case.model)
    if refused is not None:
        with pytest.raises(UnsupportedError) as info:
            to_tflite(case.model, case.options)
        assert info.value.target == "tflite" and refused in info.value.reason, info.value
        return
    got = LiteRTRunner(to_tflite(case.model, case.options)).run(case.x)
    _assert_close(got, _expected(case, all_layers=False), case)


def _finite_and_shaped(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and np.all(np.isfinite(g)), (g.shape, w.shape)


def check_onnx_dynamic(case: Case) -> None:
    """Dynamic-range int8 ONNX (accuracy is the quantization tests' job): runs, finite."""
    from edgelstm.runtime.ort import OrtRunner
    from edgelstm.targets.onnx import to_onnx

    got = OrtRunner(to_onnx(case.model, case.options).SerializeToString()).run(case.x)
    _finite_and_shaped(got, _expected(case, all_layers=True))


def check_tflite_dynamic(case: Case) -> None:
    """Hybrid int8 TFLite: refused like float, else runs and stays finite."""
    from edgelstm.runtime.litert import LiteRTRunner
    from edgelstm.targets.tflite import to_tflite

    if _tflite_refusal(case.model) is not None:
        with pytest.raises(UnsupportedError):
            to_tflite(case.model, case.options)
        return
    got = LiteRTRunner(to_tflite(case.model, case.options)).run(case.x)
    _finite_and_shaped(got, _expected(case, all_layers=False))


ONNX_BATCH_LIMIT = 2**16
"""The ONNX emitter stores zero initial states as [batch, width] initializers (a default
input needs the declared shape): a fixed batch of 2**31-1 would need 24 GiB per state."""
ODD_VALUES = (None, 0, 1, -1, 7, 2**31 - 1, 2**31, 2**63, True, 1.5, "3", np.int64(2), "int8")


@st.composite
def raw_options(draw: Any) -> dict[str, Any]:
    return {
        "batch": draw(st.sampled_from(ODD_VALUES)),
        "seq_len": draw(st.sampled_from(ODD_VALUES)),
        "quantize": draw(st.sampled_from(("none", "dynamic", "int8", "INT8", "", None, 8))),
    }


def check_options(raw: dict[str, Any]) -> None:
    """CompileOptions takes valid values and refuses the rest with SpecError; ONNX refuses
    int8 with its reason; a fixed batch/seq_len up to int32 max compiles to both targets."""
    from edgelstm.targets.onnx import to_onnx
    from edgelstm.targets.tflite import to_tflite

    try:
        options = CompileOptions(**raw)
    except SpecError as exc:
        assert "CompileOptions." in str(exc)
        return
    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(2, 3), seed=1))
    if options.quantize == "int8":
        with pytest.raises(UnsupportedError) as info:
            to_onnx(model, options)
        assert info.value.target == "onnx" and "int8" in info.value.reason
        return
    assert to_tflite(model, options)[4:8] == b"TFL3"
    if (options.batch or 1) <= ONNX_BATCH_LIMIT:
        assert to_onnx(model, options).graph.node


PROPERTIES: list[Property] = [
    Property("onnx_float", cases(), check_onnx, 300),
    Property("tflite_float", cases(), check_tflite, 300),
    Property("onnx_dynamic", cases(quantize="dynamic"), check_onnx_dynamic, 30),
    Property("tflite_dynamic", cases(quantize="dynamic"), check_tflite_dynamic, 60),
    Property("options", raw_options(), check_options, 80),
]
"""Every compile property (tools/fuzz_long.py runs the same list)."""


@pytest.mark.parametrize("prop", [as_param(p) for p in PROPERTIES])
def test_fuzz_compile(prop: Property) -> None:
    run_property(prop)
