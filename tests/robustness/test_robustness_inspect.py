"""``edgelstm inspect`` on damaged files: odd but readable fields are shown, not raised.

It reuses the crafted files of :mod:`test_robustness_files` (same folder).
"""

from __future__ import annotations

from test_robustness_files import ONNX_CRAFTED, TFLITE_CRAFTED, _onnx_edit, _tflite_edit

from edgelstm.inspect import TensorInfo, format_info, inspect_model


def test_inspect_shows_odd_fields_of_damaged_files(tmp_path) -> None:
    """Odd but readable fields are shown as such (see edgelstm.inspect.decode), not raised."""

    def onnx_init(name: str) -> TensorInfo:
        path = tmp_path / f"{name}.onnx"
        data = _onnx_edit(ONNX_CRAFTED[name], "model")
        path.write_bytes(data)
        import onnx

        first = onnx.load_from_string(data).graph.initializer[0].name  # the one edited
        info = inspect_model(path)
        return next(t for o in info.ops for t in o.inputs if t is not None and t.name == first)

    assert onnx_init("initializer-unknown-dtype").dtype.startswith("elem_type")
    short = onnx_init("initializer-raw-data-short")
    assert short.note is not None and short.note.startswith("raw_data")
    path = tmp_path / "deep.onnx"
    path.write_bytes(_onnx_edit(ONNX_CRAFTED["metadata-nested-too-deep"], "model"))
    assert "nested deeper than" in format_info(inspect_model(path))
    for name, needle in (
        ("op-output-out-of-range", "<out of range: tensor 999>"),
        ("opcode-index-out-of-range", "<out of range: opcode 9>"),
        ("metadata-not-utf8", "<invalid utf-8: 2 bytes>"),
    ):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(_tflite_edit(TFLITE_CRAFTED[name][0]))
        assert needle in format_info(inspect_model(path)), name
    path.write_bytes(_tflite_edit(TFLITE_CRAFTED["metadata-model-not-an-object"][0]))
    assert inspect_model(path).provenance["digests"] == []
