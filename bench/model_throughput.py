"""Throughput of the bit-accurate model against onnxruntime's float32 LSTM operator.

Both sides run the same batch (N sequences of T steps, I inputs, H hidden) through the same
network (ours quantized to SPEC §2's typical formats, ORT's the float32 values of those
codes), in one process: the best of several repeats each, in alternating rounds. Two cases:
one LSTM layer, and two stacked LSTM layers (``model.network.run_fixed`` against a two-layer
ONNX graph), each at every thread count asked for (default: the libraries' own, then 1).
Prints the CPU, numpy's BLAS, the int16 GEMM's instruction, the thread counts, the GEMM each
layer takes, sequence-steps per second (N * T / seconds) for both sides and their ratio,
and a summary of the ratios. The target is a ratio of at least 0.5.

    PYTHONPATH=. python bench/model_throughput.py [--n 256] [--t 100] [--i 32] [--h 64]
        [--repeats 7] [--threads default,1] [--layers 1,2] [--profile] [--clock wall|cpu]

(``PYTHONPATH=.`` from a checkout: the script's own directory comes first on ``sys.path``,
so without it ``model`` is whatever copy is installed.)

``--profile`` also splits the bit-accurate model's time into its GEMMs and the rest (the
elementwise part of every step), by timing the kernel once with and once without the
elementwise part (see :func:`model.lstm.profile_fixed`).

The machine may be shared: compare the ratio, which both sides of one run share, not the
absolute numbers between runs.
"""

from __future__ import annotations

import argparse
import platform
import time

import numba
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from model.formats import parse_format
from model.intgemm import pmadd_lanes
from model.lstm import _plan_for, lstm_fixed, profile_fixed
from model.network import run_fixed
from model.pwl import uniform_table
from model.qmodel import ACTIVATIONS, DEFAULT_FORMATS, LstmLayer, QuantizedNetwork

ONNX_ORDER = (0, 3, 1, 2)  # SPEC blocks i, f, g, o -> ONNX i, o, f, c
#: largest |h| difference between the two sides that still means "the same network"
SAME_NETWORK = 0.05


def build_layer(rng, i_size: int, h_size: int) -> LstmLayer:
    """A random LSTM layer in SPEC §2's typical formats (``x`` and ``h`` share one format,
    so layers stack)."""
    fmt = {k: parse_format(v) for k, v in DEFAULT_FORMATS.items()}
    scale = 1.0 / np.sqrt(h_size)
    w = fmt["w"].from_float(rng.normal(size=(4 * h_size, i_size)) * scale)
    r = fmt["r"].from_float(rng.normal(size=(4 * h_size, h_size)) * scale)
    b = fmt["b"].from_float(rng.normal(size=4 * h_size) * 0.1)
    tables = {
        k: uniform_table(fn, fmt[src], fmt[dst], range_log2=3, segments=64)
        for k, (src, dst, fn) in ACTIVATIONS.items()
    }
    return LstmLayer(i_size, h_size, fmt, w, r, b, tables)


def build_network(rng, i_size: int, h_size: int, n_layers: int) -> QuantizedNetwork:
    layers = [build_layer(rng, i_size if k == 0 else h_size, h_size) for k in range(n_layers)]
    return QuantizedNetwork("bench", layers)


def onnx_session(
    net: QuantizedNetwork, t_len: int, n: int, threads: int | None = None
) -> ort.InferenceSession:
    """The network as an ONNX graph: LSTM nodes, each output ``Y`` [T, 1, N, H] squeezed to
    [T, N, H] for the next one."""
    f32 = TensorProto.FLOAT
    nodes, inits, src = [], [numpy_helper.from_array(np.array([1], np.int64), "axis1")], "X"
    for k, qm in enumerate(net.lstm_layers):
        h = qm.hidden_size
        fmt = qm.formats

        def onnx_blocks(a, h=h):
            return np.concatenate([a[j * h : (j + 1) * h] for j in ONNX_ORDER]).astype(np.float32)

        w = onnx_blocks(fmt["w"].codes_to_values(qm.w))[None]
        r = onnx_blocks(fmt["r"].codes_to_values(qm.r))[None]
        b = onnx_blocks(fmt["b"].codes_to_values(qm.b))
        bias = np.concatenate([b, np.zeros_like(b)])[None]
        for name, v in (("W", w), ("R", r), ("B", bias)):
            inits.append(numpy_helper.from_array(v, f"{name}{k}"))
        nodes.append(
            helper.make_node(
                "LSTM",
                [src, f"W{k}", f"R{k}", f"B{k}"],
                [f"Y{k}", f"Y_h{k}", f"Y_c{k}"],
                hidden_size=h,
            )
        )
        nodes.append(helper.make_node("Squeeze", [f"Y{k}", "axis1"], [f"S{k}"]))
        src = f"S{k}"
    h = net.output_size
    graph = helper.make_graph(
        nodes,
        "lstm",
        [helper.make_tensor_value_info("X", f32, [t_len, n, net.input_size])],
        [helper.make_tensor_value_info(src, f32, [t_len, n, h])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def best_times(fns, repeats: int, rounds: int = 3, clock=time.perf_counter) -> list[float]:
    """Best time (by ``clock``) of each function over ``rounds`` rounds of ``repeats`` calls.

    Within a round each function runs as a block, after one untimed call: thread pools
    (ORT's, numba's) keep spinning for a while after they finish, and would otherwise
    slow whichever side runs next. The rounds alternate, so load from other work on a
    shared machine hits both sides alike.
    """
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            fn()  # warm-up: compilation, caches, the other side's spinning threads
            for _ in range(repeats):
                t0 = clock()
                fn()
                best[k] = min(best[k], clock() - t0)
    return best


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        libs = threadpool_info()
        return "; ".join(
            f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')}, "
            f"{lib.get('num_threads')} threads)"
            for lib in libs
            if lib.get("user_api") == "blas"
        )
    except ImportError:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '?')}"


def run_case(args, n_layers: int, threads: int | None) -> float:
    """One case at one thread count (None: each library's default); returns the ratio."""
    numba.set_num_threads(threads or numba.config.NUMBA_NUM_THREADS)
    rng = np.random.default_rng(0)
    net = build_network(rng, args.i, args.h, n_layers)
    fmt_x, fmt_h = net.in_fmt, net.out_fmt
    x_codes = fmt_x.from_float(rng.normal(size=(args.n, args.t, args.i)))
    x_onnx = np.ascontiguousarray(
        fmt_x.codes_to_values(x_codes).astype(np.float32).transpose(1, 0, 2)
    )
    session = onnx_session(net, args.t, args.n, threads)

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    t_fixed, t_ort = best_times(
        [lambda: run_fixed(net, x_codes), lambda: session.run(None, {"X": x_onnx})],
        args.repeats,
        clock=clock,
    )

    # both ran the same network: they differ by the tables' error and rounding, a few 1e-3
    # per layer
    h_fixed = fmt_h.codes_to_values(run_fixed(net, x_codes).y_codes)
    h_ort = session.run(None, {"X": x_onnx})[0].transpose(1, 0, 2)
    diff = np.abs(h_fixed - h_ort).max()
    if diff > SAME_NETWORK:
        raise SystemExit(
            f"{n_layers} layer(s): the two sides disagree by {diff:.3g} > {SAME_NETWORK}: "
            f"they did not run the same network, so the timing means nothing"
        )
    steps = args.n * args.t
    kinds, u = [], x_codes  # each layer's GEMM, from its input
    for k, layer in enumerate(net.lstm_layers):
        kinds.append(f"lstm{k + 1} {_plan_for(layer, u).kind}")
        u = lstm_fixed(layer, u).codes
    kinds = ", ".join(kinds)
    print(
        f"{n_layers} LSTM layer(s), threads {threads or 'default'}, best of 3 x "
        f"{args.repeats} ({args.clock} time); GEMM: {kinds}"
    )
    print(f"  max |h_fixed - h_ort|     {diff:.2e}")
    print(f"  bit-accurate run_fixed    {steps / t_fixed:12,.0f} sequence-steps/s")
    print(f"  onnxruntime float32 LSTM  {steps / t_ort:12,.0f} sequence-steps/s")
    print(f"  ratio fixed / ort         {t_ort / t_fixed:12.2f}   (target >= 0.5)")
    if args.profile:
        u = x_codes
        for k, layer in enumerate(net.lstm_layers):
            prof = profile_fixed(layer, u, repeats=args.repeats, clock=clock)
            total = prof["total"]
            print(
                f"  profile lstm{k + 1}: total {total * 1e3:7.2f} ms = GEMM "
                f"{prof['gemm'] * 1e3:7.2f} ms ({prof['gemm'] / total:4.0%}) + elementwise "
                f"{prof['elementwise'] * 1e3:7.2f} ms ({prof['elementwise'] / total:4.0%}); "
                f"GEMM in {prof['kind']}"
            )
            u = lstm_fixed(layer, u).codes
    return t_ort / t_fixed


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--t", type=int, default=100)
    ap.add_argument("--i", type=int, default=32)
    ap.add_argument("--h", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--layers", default="1,2", help="the cases: numbers of LSTM layers")
    ap.add_argument("--profile", action="store_true", help="split the time: GEMM, elementwise")
    ap.add_argument(
        "--threads",
        default="default,1",
        help="thread counts to run, comma-separated, for both sides ('default': each "
        "library's own, one per core); 1 compares one core against one core, steadier on a "
        "busy machine",
    )
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: the calling thread's CPU time, which other work on a busy machine does "
        "not inflate; only with --threads 1, where both sides run on the calling thread",
    )
    args = ap.parse_args(argv)
    threads = [None if v == "default" else int(v) for v in args.threads.split(",")]
    if args.clock == "cpu" and threads != [1]:
        ap.error("--clock cpu needs --threads 1: other threads' time would not be counted")
    lanes = pmadd_lanes()
    print(f"CPU {cpu_model()}, {numba.config.NUMBA_NUM_THREADS} hardware threads")
    print(f"numpy BLAS: {blas_info()}")
    print(
        f"int16 GEMM: {f'pmaddwd, {lanes} int32 lanes' if lanes else 'none on this CPU'}; "
        f"onnxruntime {ort.__version__}"
    )
    print(f"batch N={args.n} T={args.t} I={args.i} H={args.h}")
    ratios = {}
    for th in threads:
        for n_layers in (int(v) for v in args.layers.split(",")):
            ratios[(n_layers, th)] = run_case(args, n_layers, th)
    print("ratio fixed / ort (target >= 0.5):")
    for (n_layers, th), ratio in ratios.items():
        print(f"  {n_layers} layer(s), threads {th or 'default':>7}: {ratio:5.2f}")


if __name__ == "__main__":
    main()
