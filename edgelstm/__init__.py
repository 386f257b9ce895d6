"""edgelstm: compile LSTM cells to fused TFLite / ONNX ops, exactly, and quantize them.

Pipeline: import -> canonical :class:`LSTMModel` (per-gate weights in TFLite layout)
-> (quantization plan) -> emit TFLite / ONNX -> run -> verify/report.

Importers that need TensorFlow or PyTorch import them lazily, inside the call.
"""

from typing import TYPE_CHECKING, Any

from edgelstm.errors import (
    CalibrationError,
    EdgeLSTMError,
    InputDataError,
    MissingDependencyError,
    ModelFileError,
    SpecError,
    UnsupportedError,
    WeightsError,
)
from edgelstm.importers.npz import from_npz, save_npz
from edgelstm.ir.model import DenseHead, LSTMLayer, LSTMModel
from edgelstm.ir.options import CompileOptions, Int8Options, OnnxOptions, UnfusedOptions
from edgelstm.ir.roles import ROLES, Role
from edgelstm.ir.spec import ACTIVATIONS, LSTMSpec
from edgelstm.ir.weights import LSTMWeights
from edgelstm.reference import ModelOutput, reference, reference_model

# Everything past the canonical core is loaded on first use (PEP 562), so `import edgelstm`
# and the CLI's start-up stay light: the emitters pull in flatbuffers/onnx, the runners the
# interpreters, the report matplotlib. Public name -> defining module.
_LAZY: dict[str, str] = {
    "BenchResult": "edgelstm.measure.bench",
    "bench": "edgelstm.measure.bench",
    "from_keras": "edgelstm.importers",
    "from_onnx": "edgelstm.importers",
    "from_tf_cell": "edgelstm.importers",
    "from_tf_checkpoint": "edgelstm.importers",
    "from_torch": "edgelstm.importers",
    "ModelInfo": "edgelstm.inspect",
    "inspect_model": "edgelstm.inspect",
    "save_onnx": "edgelstm.targets.onnx",
    "to_onnx": "edgelstm.targets.onnx",
    "optimize_latency": "edgelstm.measure.optimize",
    "Report": "edgelstm.measure.report",
    "build_report": "edgelstm.measure.report",
    "write_report": "edgelstm.measure.report",
    "Runner": "edgelstm.runtime.select",
    "open_runner": "edgelstm.runtime.select",
    "from_tflite": "edgelstm.targets.tflite",
    "save_tflite": "edgelstm.targets.tflite",
    "to_tflite": "edgelstm.targets.tflite",
    "VerifyResult": "edgelstm.measure.verify",
    "verify": "edgelstm.measure.verify",
    "link_chain": "edgelstm.targets.tflite.link",
    "ExplainReport": "edgelstm.measure.explain",
    "explain_int8": "edgelstm.measure.explain_file",
    "rewrite_onnx": "edgelstm.targets.onnx.rewrite",
    "TFLiteConverter": "edgelstm.whole",
    "from_torch_module": "edgelstm.whole",
    "TorchConverter": "edgelstm.whole",
    "torch_to_tflite": "edgelstm.whole",
    "keras_to_onnx": "edgelstm.whole",
    "keras_to_tflite": "edgelstm.whole",
}

if TYPE_CHECKING:  # static tools see the lazy names as ordinary imports
    from edgelstm.importers import (
        from_keras,
        from_onnx,
        from_tf_cell,
        from_tf_checkpoint,
        from_torch,
    )
    from edgelstm.inspect import ModelInfo, inspect_model
    from edgelstm.measure.bench import BenchResult, bench
    from edgelstm.measure.explain import ExplainReport
    from edgelstm.measure.explain_file import explain_int8
    from edgelstm.measure.optimize import optimize_latency
    from edgelstm.measure.report import Report, build_report, write_report
    from edgelstm.measure.verify import VerifyResult, verify
    from edgelstm.runtime.select import Runner, open_runner
    from edgelstm.targets.onnx import save_onnx, to_onnx
    from edgelstm.targets.onnx.rewrite import rewrite_onnx
    from edgelstm.targets.tflite import from_tflite, save_tflite, to_tflite
    from edgelstm.targets.tflite.link import link_chain
    from edgelstm.whole import (
        TFLiteConverter,
        TorchConverter,
        from_torch_module,
        keras_to_onnx,
        keras_to_tflite,
        torch_to_tflite,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgelstm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


from edgelstm._version import __version__  # noqa: E402

__all__ = [
    "ACTIVATIONS",
    "ROLES",
    "BenchResult",
    "CalibrationError",
    "CompileOptions",
    "DenseHead",
    "EdgeLSTMError",
    "ExplainReport",
    "InputDataError",
    "Int8Options",
    "LSTMLayer",
    "LSTMModel",
    "LSTMSpec",
    "LSTMWeights",
    "MissingDependencyError",
    "ModelFileError",
    "ModelInfo",
    "ModelOutput",
    "OnnxOptions",
    "Report",
    "Role",
    "Runner",
    "SpecError",
    "TFLiteConverter",
    "TorchConverter",
    "UnfusedOptions",
    "UnsupportedError",
    "VerifyResult",
    "WeightsError",
    "__version__",
    "bench",
    "build_report",
    "explain_int8",
    "from_keras",
    "from_npz",
    "from_onnx",
    "from_tf_cell",
    "from_tf_checkpoint",
    "from_tflite",
    "from_torch",
    "from_torch_module",
    "inspect_model",
    "keras_to_onnx",
    "keras_to_tflite",
    "link_chain",
    "open_runner",
    "optimize_latency",
    "reference",
    "reference_model",
    "rewrite_onnx",
    "save_npz",
    "save_onnx",
    "save_tflite",
    "to_onnx",
    "to_tflite",
    "torch_to_tflite",
    "verify",
    "write_report",
]
