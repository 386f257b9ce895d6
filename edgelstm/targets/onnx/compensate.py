"""Compensated int8 codes for onnxruntime's ``DynamicQuantizeLSTM``: a weight scheme that uses
the calibration data.

Every other dynamic scheme (:mod:`.weight_schemes`) rounds each weight to its nearest code;
on trained LSTMs that rounding is most of the dynamic file's error (the Silero VAD LSTM:
hybrid TFLite 6.56 -> 0.46 output LSB with the same codes chosen this way). The kernel fixes
the grid (one symmetric scale per direction for W and one for R, as ORT's full-range
defaults), not the rounding: each direction's [W | R | b] is rounded by
:func:`edgelstm.quant.rounding.compensated_rounding` on the calibration's second moments of
the gates' input u = [x_t; h_(t-1); 1], the float bias (the input half of ONNX's B) absorbing
the mean error. The codes are full range, so like ORT's defaults they can saturate the
u8 x s8 kernels of x86 CPUs without VNNI; :mod:`.scheme_choice` measures that as for any
candidate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from edgelstm.quant.rounding import compensated_rounding

QMAX = 127

Hessians = Sequence[Sequence[np.ndarray | None] | None]
"""Per LSTM node of the top graph (in node order), per direction: E[u u^T] of that
direction's gate input [x; h; 1], or None (that node or direction keeps its codes)."""


def _init_map(proto: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in proto.graph.initializer}


def compensate_lstm_weights(
    quantized: onnx.ModelProto, floats: onnx.ModelProto, hessians: Hessians
) -> int:
    """Re-round, in place, the W and R of every ``DynamicQuantizeLSTM`` node of
    ``quantized`` (ORT's full-range file of ``floats``) whose float originals and hessian are
    known; returns how many directions were re-rounded (0 unless there is one hessian entry
    per such node: one per layer of an all-fused graph).

    Layouts (ONNX): float W [D, 4H, I], R [D, 4H, H], B [D, 8H] (input then recurrent
    biases); quantized W [D, I, 4H], R [D, H, 4H] int8, scales and zero points [D].
    """
    originals = _init_map(floats)
    inits = _init_map(quantized)
    lstm_nodes = [n for n in quantized.graph.node if n.op_type == "DynamicQuantizeLSTM"]
    if len(lstm_nodes) != len(hessians):  # some layer is no fused node: no safe pairing
        return 0
    done = 0
    for node, per_dir in zip(lstm_nodes, hessians, strict=False):
        if per_dir is None or len(node.input) < 12:
            continue
        wq, rq, b = (inits.get(node.input[j]) for j in (1, 2, 3))
        scales = [inits.get(node.input[j]) for j in (8, 9, 10, 11)]
        if wq is None or rq is None or b is None or any(s is None for s in scales):
            continue
        w_name, r_name = (t.name.removesuffix("_quantized") for t in (wq, rq))
        if w_name not in originals or r_name not in originals:
            continue
        w = numpy_helper.to_array(originals[w_name]).astype(np.float64)  # [D, 4H, I]
        r = numpy_helper.to_array(originals[r_name]).astype(np.float64)  # [D, 4H, H]
        bias = numpy_helper.to_array(b).astype(np.float64)  # [D, 8H]
        w_codes = numpy_helper.to_array(wq).copy()
        r_codes = numpy_helper.to_array(rq).copy()
        w_scale, w_zp, r_scale, r_zp = (numpy_helper.to_array(s).copy() for s in scales)
        if w_scale.shape != (w.shape[0],) or r_scale.shape != (r.shape[0],):
            continue  # per-channel scales: not this layout
        gates, n_in = w.shape[1], w.shape[2]
        for d, hess in enumerate(per_dir):
            if hess is None or hess.shape != (n_in + r.shape[2] + 1,) * 2:
                continue
            sw = max(float(np.abs(w[d]).max()), 1e-30) / QMAX
            sr = max(float(np.abs(r[d]).max()), 1e-30) / QMAX
            grid = np.concatenate([np.full(n_in, sw), np.full(r.shape[2], sr), [1.0]])
            joint = np.concatenate([w[d], r[d], (bias[d, :gates] + bias[d, gates:])[:, None]], 1)
            q = compensated_rounding(joint, grid, hess, qmax=QMAX, exact_columns=1)
            w_codes[d] = np.clip(np.rint(q[:, :n_in] / sw), -QMAX, QMAX).T
            r_codes[d] = np.clip(np.rint(q[:, n_in:-1] / sr), -QMAX, QMAX).T
            bias[d, :gates] = q[:, -1] - bias[d, gates:]
            w_scale[d], r_scale[d] = sw, sr
            w_zp[d] = r_zp[d] = 0
            done += 1
        for init, value in (
            (wq, w_codes),
            (rq, r_codes),
            (b, bias.astype(np.float32)),
            (scales[0], w_scale.astype(np.float32)),
            (scales[1], w_zp),
            (scales[2], r_scale.astype(np.float32)),
            (scales[3], r_zp),
        ):
            assert init is not None
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    return done
