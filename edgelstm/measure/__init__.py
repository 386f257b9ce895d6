"""Measure compiled files: the data they run on, verify, bench, the latency search, reports.

* :mod:`.data` — the one loader of [N, T, I] arrays (``--data`` and ``--calibration``);
* :mod:`.verify` — error against the float64 reference (and the source framework);
* :mod:`.frameworks` — run the source model in its own framework (TF/Keras, PyTorch);
* :mod:`.bench` — latency and memory on the real interpreters;
* :mod:`.int8_error` — int8 error in output LSBs (tests and tools);
* :mod:`.optimize` — build every variant, verify, time, pick the fastest within a budget;
* :mod:`.report` — one self-contained HTML report (+ Markdown).
"""
