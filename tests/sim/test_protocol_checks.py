"""The testbench's own checks, against hand-written broken stand-ins (not the LSTM).

Each stand-in has the SPEC §5 ports (byte-padded buses) and answers every input beat with
one output beat of zeros, but breaks one AXI4-Stream rule. The bench must name the rule.
Icarus builds them in a blink.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_network

from sim import runner
from sim.job import JOB_ENV, Job, Phase
from sim.sequences import random_sequences
from sim.tb import bus_width

STANDIN = """
module {name}(input clk, input rst,
    input [{iw}:0] s_axis_tdata, input s_axis_tvalid, output s_axis_tready, input s_axis_tlast,
    output reg [{ow}:0] m_axis_tdata, output reg m_axis_tvalid, input m_axis_tready,
    output reg m_axis_tlast);
  reg busy = 0;
  reg [1:0] age = 0;
  assign s_axis_tready = !busy;
  always @(posedge clk) begin
    if (rst) begin
      busy <= 0; m_axis_tvalid <= 0; m_axis_tdata <= 0; m_axis_tlast <= 0; age <= 0;
    end else begin
      if (s_axis_tvalid && !busy) begin
        busy <= 1; m_axis_tvalid <= 1; m_axis_tlast <= s_axis_tlast; m_axis_tdata <= 0;
        age <= 0;
      end else if (m_axis_tvalid && m_axis_tready) begin
        busy <= 0; m_axis_tvalid <= 0;
      end else if (m_axis_tvalid) begin
        age <= age + 1;
        {bug}
      end
    end
  end
endmodule
"""
BUGS = {
    "drops_tvalid": ("if (age == 1) begin m_axis_tvalid <= 0; busy <= 0; end", "tvalid fell"),
    "changes_tdata": ("m_axis_tdata <= m_axis_tdata + 1;", "changed while tvalid"),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_protocol_violation_is_named(tmp_path, bug):
    net = make_network("net_last")
    net.name = f"standin_{bug}"
    net.output = "sequence"
    iw = bus_width(net.input_size * net.in_fmt.width) - 1
    ow = bus_width(net.output_size * net.out_fmt.width) - 1
    v = tmp_path / f"{net.name}.v"
    v.write_text(STANDIN.format(name=net.name, iw=iw, ow=ow, bug=BUGS[bug][0]))
    b = runner.build(v, net.name, sim="icarus", build_root=tmp_path / "build")
    xs = list(random_sequences(net, 6, 3, np.random.default_rng(0)))
    job = Job(net.to_manifest(), [Phase("p", xs, backpressure="pattern:11110")], diagnose=False)
    path = job.write(tmp_path / "run")
    runner.run_test(b, "sim.cocotb_job", test_dir=tmp_path / "run", env={JOB_ENV: str(path)})
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert any(BUGS[bug][1] in v for v in res["protocol"]), res["protocol"]
    assert res["interface"] == []
