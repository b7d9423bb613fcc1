"""The Verilog export's ROMs: $readmemh files beside the .v, read by Icarus and Yosys."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hdl_models import make_network, random_inputs

from hdl.generate import LINT_WAIVERS, design_files, generate, lint_flags, run_yosys
from model.network import run_fixed

#: a design small enough for Icarus, with two LSTM layers (one with peepholes) and a head
SMALL = {"input_size": 3, "hidden": [3, 2], "dense": [2], "peephole": [False, True]}

TESTBENCH = """`timescale 1ns/1ps
module tb;
  reg clk = 0;
  always #5 clk = ~clk;
  reg rst = 1;
  reg [{bits_in}-1:0] xs [0:{steps}-1];
  initial $readmemh("{x_file}", xs);
  reg [{bits_in}-1:0] tdata = 0;
  reg tvalid = 0, tlast = 0;
  wire tready, mvalid, mlast;
  wire [{bits_out}-1:0] mdata;
  {top} dut (.clk(clk), .rst(rst), .s_axis_tdata(tdata), .s_axis_tvalid(tvalid),
    .s_axis_tready(tready), .s_axis_tlast(tlast), .m_axis_tdata(mdata),
    .m_axis_tvalid(mvalid), .m_axis_tready(1'b1), .m_axis_tlast(mlast));
  integer i = 0, n = 0;
  initial begin
    repeat (3) @(posedge clk);
    rst <= 0;
  end
  always @(posedge clk) if (!rst && (!tvalid || tready)) begin
    if (i < {steps}) begin
      tdata <= xs[i];
      tlast <= i == {steps} - 1;
      tvalid <= 1;
      i <= i + 1;
    end else tvalid <= 0;
  end
  always @(posedge clk) if (!rst && mvalid) begin
    $display("y %h %0d", mdata, mlast);
    n = n + 1;
    if (n == {steps}) $finish;
  end
  initial begin
    #{timeout};
    $display("timeout");
    $finish;
  end
endmodule
"""


def small_network(name="rom_net", lanes=2):
    return make_network(SMALL["input_size"], SMALL["hidden"], SMALL["dense"],
                        peephole=SMALL["peephole"], activations=["relu"], name=name,
                        hardware={"lanes": lanes})  # fmt: skip


def icarus_run(net, v_path, x, *, run_dir, manifest):
    """Simulate the generated Verilog on one sequence ``x`` [T, I] with a plain
    Verilog testbench in Icarus; return the output codes [T, n]."""
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog is not installed")
    hw = manifest["hardware"]
    w_in, w_out = net.in_fmt.width, net.out_fmt.width
    bits_in = 8 * -(-net.input_size * w_in // 8)
    bits_out = 8 * -(-net.output_size * w_out // 8)
    words = []
    for row in x:
        word = sum((int(c) & ((1 << w_in) - 1)) << (k * w_in) for k, c in enumerate(row))
        words.append(f"{word:0{bits_in // 4}x}\n")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "x.hex").write_text("".join(words))
    steps = len(x)
    timeout = 10 * (hw["latency"] + 4) * (steps + 2)
    tb = TESTBENCH.format(bits_in=bits_in, bits_out=bits_out, steps=steps, top=net.name,
                          x_file="x.hex", timeout=timeout)  # fmt: skip
    (run_dir / "tb.v").write_text(tb)
    vvp = run_dir / "sim.vvp"
    cmd = ["iverilog", "-g2005", "-o", str(vvp), "-s", "tb", str(run_dir / "tb.v"), str(v_path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(["vvp", "-n", str(vvp)], cwd=run_dir, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "timeout" not in done.stdout and "ERROR" not in done.stdout, done.stdout
    assert "Not enough words" not in done.stdout + done.stderr
    out = []
    for line in done.stdout.splitlines():
        if not line.startswith("y "):
            continue
        word = int(line.split()[1], 16)
        codes = []
        for k in range(net.output_size):
            c = (word >> (k * w_out)) & ((1 << w_out) - 1)
            if net.out_fmt.signed and c >> (w_out - 1):
                c -= 1 << w_out
            codes.append(c)
        out.append(codes)
    return np.array(out, dtype=np.int64)


def test_hex_files_beside_the_verilog(tmp_path):
    """A mid-size network: one .hex per ROM, named in the Verilog and the manifest, holding
    the weights; no weight as an initial line."""
    net = make_network(8, [16], [3], hardware={"lanes": 4}, name="mid")
    v_path, m_path = generate(net, tmp_path)
    text = v_path.read_text()
    man = json.loads(m_path.read_text())
    files = man["hardware"]["rom_files"]
    assert files == sorted(p.name for p in tmp_path.glob("*.hex"))
    assert [p.name for p in design_files(v_path)] == [v_path.name, *files]
    for name in files:
        assert f'.INIT_FILE("{name}")' in text
        assert re.fullmatch(r"mid_[a-z0-9_]+\.hex", name)
    assert "$readmemh(INIT_FILE, mem);" in text
    # only the state RAMs (h: 2H words, c: H words a layer) start from initial lines (zeros)
    initial = set(re.findall(r"(\w+)\[\d+\] = \d+'h", text))
    assert initial <= {"h_ram", "cell_ram"}, "a ROM word is still an initial line"
    # dense1 takes 3 lanes (the most that divide its 3 rows, up to 4): lane 0 owns row 0
    layer = net.layers[1]
    w = layer.formats["w"].width
    words = (tmp_path / "mid_dense1_lane0_weights.hex").read_text().split()
    codes = [int(v, 16) - ((int(v, 16) >> (w - 1)) << w) for v in words]
    assert codes == [int(c) for c in layer.w[0]]
    # the LSTM lanes: 4 x (weights, bias) of 4H/4 rows each
    lane_w = (tmp_path / "mid_lstm1_lane0_weights.hex").read_text().split()
    assert len(lane_w) == (4 * 16 // 4) * (8 + 16)


@pytest.mark.parametrize("where", ["relative", "readmem_dir"])
def test_icarus_reads_the_hex_files(tmp_path, where):
    """The generated Verilog in Icarus with a hand-written testbench gives run_fixed's
    codes: relative paths from a run in the .v's folder, absolute ones from elsewhere."""
    net = small_network()
    out = tmp_path / "design"
    opts = {"readmem_dir": out.resolve()} if where == "readmem_dir" else {}
    v_path, m_path = generate(net, out, **opts)
    run_dir = out if where == "relative" else tmp_path / "elsewhere"
    (x,) = random_inputs(net, [5], seed=3)
    got = icarus_run(net, v_path, x, run_dir=run_dir, manifest=json.loads(m_path.read_text()))
    want = run_fixed(net, x[None]).y_codes[0]
    assert got.shape == want.shape
    assert (got == want).all(), f"Icarus:\n{got}\nmodel:\n{want}"


def test_verilator_lint_wall_with_the_waivers(tmp_path):
    """verilator --lint-only -Wall with exactly the documented waivers says nothing."""
    net = small_network(lanes=4)
    v_path, _ = generate(net, tmp_path)
    cmd = [sys.executable, "-m", "verilator", "--quiet", *lint_flags(), v_path.name]
    assert [f for f in cmd if f.startswith("-Wno-")] == [f"-Wno-{n}" for n in LINT_WAIVERS]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""


def test_plain_module_names_and_header(tmp_path):
    net = small_network()
    v_path, m_path = generate(net, tmp_path)
    text = v_path.read_text()
    modules = re.findall(r"^module (\S+?)\s*[(#]", text, re.M)
    assert "rom_net" in modules and "rom_net_lstm2_lane0" in modules
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", m) for m in modules), modules
    assert "\\" not in text, "an escaped identifier is left"
    head = text[: text.index("\nmodule ")]
    hw = json.loads(m_path.read_text())["hardware"]
    for needle in ("s_axis_tdata[47:0]", "m_axis_tdata[31:0]", "[k*W +: W]",
                   f"{hw['cycles_per_step']} cycles per step", f"latency {hw['latency']}",
                   "aresetn", "lstmfx 0.", str(net.in_fmt), str(net.out_fmt),
                   "$readmemh"):  # fmt: skip
        assert needle in head, f"{needle!r} is not in the header"


def test_generation_grows_with_the_weights(tmp_path):
    """The Verilog's size no longer follows the weight count: 16x the weights, the .v grows
    by much less, the lanes' weight files by the weights."""
    sizes = {}
    for h in (4, 16):
        net = make_network(h, [h], hardware={"lanes": 4}, name=f"scale{h}")
        v_path, _ = generate(net, tmp_path / str(h))
        hexes = sum(p.stat().st_size for p in (tmp_path / str(h)).glob("*_weights.hex"))
        sizes[h] = (v_path.stat().st_size, hexes, net.layers[0].w.size + net.layers[0].r.size)
    (v4, x4, n4), (v16, x16, n16) = sizes[4], sizes[16]
    assert n16 == 16 * n4
    assert v16 < 4 * v4  # the state and the probes grow with H, the weights do not show
    assert x16 == 16 * x4  # 4 hex digits a word, one word a line


def test_yosys_finds_the_hex_files_beside_the_verilog(tmp_path):
    """Yosys run from another folder reads design/<file>.hex through the .v's folder (a
    missing $readmemh file is an error in Yosys)."""
    net = small_network()
    generate(net, tmp_path / "design")
    script = "read_verilog design/rom_net.v\nhierarchy -top rom_net\nproc\nflatten\nmemory -nomap\n"
    log = run_yosys(script, cwd=tmp_path)
    assert "Can not open" not in log


def test_regenerating_removes_only_its_own_old_files(tmp_path):
    """A design generated again with other lanes drops the ROM files it no longer has and
    leaves other files alone, even ones that look like its own."""
    generate(small_network(lanes=4), tmp_path)
    four = set(p.name for p in tmp_path.glob("*.hex"))
    (tmp_path / "rom_net_keep_me.hex").write_text("00\n")
    _, m_path = generate(small_network(lanes=1), tmp_path)
    one = set(json.loads(m_path.read_text())["hardware"]["rom_files"])
    assert one != four
    assert set(p.name for p in tmp_path.glob("*.hex")) == one | {"rom_net_keep_me.hex"}
