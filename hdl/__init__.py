"""The network datapath in Amaranth HDL, built from a :class:`model.qmodel.QuantizedNetwork`.

- :mod:`hdl.fixed`: shapes of formats, the rounding circuit of SPEC §1, the vector stream
  between layers, small helpers
- :mod:`hdl.pwl`: the PWL activation unit (SPEC §3)
- :mod:`hdl.mac`: the gate MAC lane (exact pre-activations)
- :mod:`hdl.cell`: the cell update (c_t, tanh(c_t), h_t, peepholes)
- :mod:`hdl.core`: one LSTM layer between two streams (:class:`~hdl.core.LstmCore`)
- :mod:`hdl.dense`: one dense layer between two streams (:class:`~hdl.dense.DenseCore`)
- :mod:`hdl.network`: the chain of layer cores behind the AXI4-Stream ports of SPEC §5
  (:class:`~hdl.network.NetworkCore`), lanes per layer and ``lanes = "auto"``
- :mod:`hdl.generate`: Verilog and manifest files, Yosys statistics; :mod:`hdl.cli`: the
  ``generate`` subcommand
"""
