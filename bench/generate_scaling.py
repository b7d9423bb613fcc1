"""Time and peak memory of Verilog generation as the network grows (issue 11, item 3).

Each size runs :func:`hdl.generate.generate` on a random one-layer network in its own
process, so that peak memory is that size's alone; prints the weight count, seconds, the
peak resident memory of the process and of its Yosys child, and the sizes of the .v and
of the .hex files. The target: I=128, H=256 within 60 s and 1 GB, and time and memory
growing no faster than the weight count.

    python bench/generate_scaling.py [--sizes 32x64,128x256,256x512] [--lanes 1,16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path[:0] = [{root!r}, {tests!r}]
from hdl_models import make_network
from hdl.generate import generate
i, h, p, out = {i}, {h}, {p}, Path({out!r})
net = make_network(i, [h], hardware={{"lanes": p}}, name="scale")
t = time.perf_counter()
v_path, _ = generate(net, out)
dt = time.perf_counter() - t
rss = lambda who: resource.getrusage(who).ru_maxrss / 1024
print(json.dumps({{"seconds": dt, "rss_mb": rss(resource.RUSAGE_SELF),
                  "yosys_mb": rss(resource.RUSAGE_CHILDREN),
                  "weights": int(net.layers[0].w.size + net.layers[0].r.size),
                  "v_mb": v_path.stat().st_size / 1e6,
                  "hex_mb": sum(f.stat().st_size for f in out.glob("*.hex")) / 1e6}}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="32x64,128x256,256x512", help="IxH,IxH,...")
    ap.add_argument("--lanes", default="1,16", help="lane counts, comma separated")
    args = ap.parse_args(argv)
    print(f"{'I':>5} {'H':>5} {'lanes':>5} {'weights':>9} {'s':>7} {'RSS MB':>7} "
          f"{'yosys MB':>8} {'.v MB':>6} {'.hex MB':>7}")  # fmt: skip
    for size in args.sizes.split(","):
        i, h = (int(v) for v in size.split("x"))
        for p in (int(v) for v in args.lanes.split(",")):
            with tempfile.TemporaryDirectory(prefix="lstmfx-gen-") as tmp:
                code = CHILD.format(root=str(ROOT), tests=str(ROOT / "tests" / "hdl"), i=i, h=h,
                                    p=p, out=tmp)  # fmt: skip
                done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if done.returncode:
                print(f"{i:5d} {h:5d} {p:5d} failed:\n{done.stderr}")
                continue
            r = json.loads(done.stdout.splitlines()[-1])
            mem = f"{r['rss_mb']:7.0f} {r['yosys_mb']:8.0f} {r['v_mb']:6.2f} {r['hex_mb']:7.2f}"
            print(f"{i:5d} {h:5d} {p:5d} {r['weights']:9d} {r['seconds']:7.1f} {mem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
