"""``--calibration FEEDS`` of a whole ONNX graph: the loader's shapes, dtypes and errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgelstm.errors import CalibrationError
from edgelstm.measure.feeds import check_feeds, graph_inputs, load_feeds


def _graph(*inputs: tuple[str, int, list]) -> onnx.ModelProto:
    """Identity of each input (name, elem type, shape): only the interface matters here."""
    vis = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    outs = [helper.make_tensor_value_info(f"{n}_out", t, s) for n, t, s in inputs]
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n, _, _ in inputs]
    return helper.make_model(helper.make_graph(nodes, "g", vis, outs))


IMAGE = ("image", TensorProto.FLOAT, [1, 1, 64, "width"])
LENS = ("lens", TensorProto.INT32, [1])


def test_npz_one_array_per_input_cast_to_its_dtype(tmp_path) -> None:
    model = _graph(IMAGE, LENS)
    assert graph_inputs(model)[0][1] == [1, 1, 64, "width"]
    path = tmp_path / "feeds.npz"
    images = np.random.default_rng(0).random((3, 1, 1, 64, 20))  # float64, W dynamic
    np.savez(path, image=images, lens=np.array([[5], [6], [7]]))
    feeds = load_feeds(path, model)
    assert len(feeds) == 3
    assert feeds[1]["image"].shape == (1, 1, 64, 20) and feeds[1]["image"].dtype == np.float32
    assert feeds[2]["lens"].dtype == np.int32 and feeds[2]["lens"].tolist() == [7]
    np.testing.assert_array_equal(feeds[0]["image"], images[0].astype(np.float32))


def test_npy_for_a_one_input_graph_and_ready_feeds(tmp_path) -> None:
    model = _graph(IMAGE)
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 1, 1, 64, 9), np.float32))
    assert [f["image"].shape for f in load_feeds(path, model)] == [(1, 1, 64, 9)] * 2
    ready = [{"image": np.ones((1, 1, 64, w), np.float32)} for w in (5, 7)]  # widths differ
    assert [f["image"].shape[-1] for f in check_feeds(ready, model)] == [5, 7]


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"image": np.zeros((2, 1, 1, 64, 9))}, r"no array for \['lens'\]"),
        (
            {"image": np.zeros((2, 1, 1, 64, 9)), "lens": np.ones((2, 1)), "x": np.ones(2)},
            r"no graph input named \['x'\]",
        ),
        ({"image": np.zeros((2, 1, 64, 9)), "lens": np.ones((2, 1))}, r"expected \[N, 1, 1, 64"),
        ({"image": np.zeros((2, 1, 3, 64, 9)), "lens": np.ones((2, 1))}, r"has shape \[2, 1, 3"),
        ({"image": np.zeros((2, 1, 1, 64, 9)), "lens": np.ones((3, 1))}, r"'image': 2, 'lens': 3"),
        ({"image": np.zeros((2, 1, 1, 64, 9)), "lens": np.full((2, 1), 1.5)}, "not all int32"),
        ({"image": np.full((2, 1, 1, 64, 9), np.nan), "lens": np.ones((2, 1))}, "NaN"),
    ],
    ids=["missing", "unknown", "rank", "static-dim", "n-mismatch", "fractions", "nan"],
)
def test_errors_name_the_graph_inputs_and_the_way_out(tmp_path, arrays, match) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(CalibrationError, match=match) as err:
        load_feeds(path, _graph(IMAGE, LENS))
    if match not in ("not all int32", "NaN"):
        assert "'image' [1, 1, 64, width] float32, 'lens' [1] int32" in str(err.value)
        assert "[N, *input shape]" in str(err.value)


def test_file_errors(tmp_path) -> None:
    model = _graph(IMAGE, LENS)
    np.save(tmp_path / "one.npy", np.zeros((2, 1, 1, 64, 9)))
    with pytest.raises(CalibrationError, match="one array, but the graph has 2 inputs"):
        load_feeds(tmp_path / "one.npy", model)
    with pytest.raises(CalibrationError, match=r"existing \.npy or \.npz"):
        load_feeds(tmp_path / "missing.npz", model)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CalibrationError, match="pickled"):
        load_feeds(tmp_path / "obj.npy", _graph(IMAGE))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CalibrationError, match="not a readable numpy file"):
        load_feeds(tmp_path / "junk.npz", model)
    with pytest.raises(CalibrationError, match="N = 0"):
        check_feeds(np.zeros((0, 1, 1, 64, 9)), _graph(IMAGE))
