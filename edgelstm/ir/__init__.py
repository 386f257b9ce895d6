"""The canonical model: what every importer produces and every target consumes.

* :mod:`.spec` — sizes and features of one direction (:class:`LSTMSpec`);
* :mod:`.roles` — the one table of tensor roles (the fused op's 24 inputs, 5 intermediates);
* :mod:`.weights` — per-gate weights of one direction, in TFLite's layout;
* :mod:`.model` — layers × directions + optional dense head (:class:`LSTMModel`, ``walk()``);
* :mod:`.gate_orders` — framework gate orders, converted only at the import/export edges;
* :mod:`.options` — typed compile options shared by every target.

Nothing here imports a file format, a runtime or a framework.
"""
