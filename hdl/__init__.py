"""The LSTM datapath in Amaranth HDL, built from a :class:`model.qmodel.QuantizedModel`.

- :mod:`hdl.fixed`: shapes of formats, the rounding circuit of SPEC §1, small helpers
- :mod:`hdl.pwl`: the PWL activation unit (SPEC §3)
- :mod:`hdl.mac`: the gate MAC lane (exact pre-activations)
- :mod:`hdl.cell`: the cell update (c_t, tanh(c_t), h_t, peepholes)
- :mod:`hdl.core`: the streaming core with the AXI4-Stream ports of SPEC §5
- :mod:`hdl.generate`: Verilog and manifest files, Yosys statistics; :mod:`hdl.cli`: the
  ``generate`` subcommand
"""
