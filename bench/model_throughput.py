"""Throughput of the bit-accurate model against onnxruntime's float32 LSTM operator.

Both run the same batch (N sequences of T steps, I inputs, H hidden) with the same weights
(ours quantized to SPEC §2's typical formats, ORT's the float32 values of those codes), in one
process: the best of several repeats each, in alternating rounds. Prints sequence-steps
per second (N * T / seconds) for both and their ratio. The target is a ratio of at least 0.5.

    python bench/model_throughput.py [--n 256] [--t 100] [--i 32] [--h 64] [--repeats 7]
                                     [--threads N]

The machine may be shared: compare the ratio, which both sides of one run share, not the
absolute numbers between runs.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from model.formats import parse_format
from model.lstm import run_fixed
from model.pwl import uniform_table
from model.qmodel import ACTIVATIONS, DEFAULT_FORMATS, QuantizedModel

ONNX_ORDER = (0, 3, 1, 2)  # SPEC blocks i, f, g, o -> ONNX i, o, f, c
#: largest |h| difference between the two sides that still means "the same network"
SAME_NETWORK = 0.05


def build_model(rng, i_size: int, h_size: int) -> QuantizedModel:
    fmt = {k: parse_format(v) for k, v in DEFAULT_FORMATS.items()}
    scale = 1.0 / np.sqrt(h_size)
    w = fmt["w"].from_float(rng.normal(size=(4 * h_size, i_size)) * scale)
    r = fmt["r"].from_float(rng.normal(size=(4 * h_size, h_size)) * scale)
    b = fmt["b"].from_float(rng.normal(size=4 * h_size) * 0.1)
    tables = {
        k: uniform_table(fn, fmt[src], fmt[dst], range_log2=3, segments=64)
        for k, (src, dst, fn) in ACTIVATIONS.items()
    }
    return QuantizedModel("bench", i_size, h_size, fmt, w, r, b, tables)


def onnx_session(
    qm: QuantizedModel, t_len: int, n: int, threads: int | None = None
) -> ort.InferenceSession:
    h = qm.hidden_size
    fmt = qm.formats

    def onnx_blocks(a):
        return np.concatenate([a[k * h : (k + 1) * h] for k in ONNX_ORDER]).astype(np.float32)

    w = onnx_blocks(fmt["w"].codes_to_values(qm.w))[None]
    r = onnx_blocks(fmt["r"].codes_to_values(qm.r))[None]
    b = onnx_blocks(fmt["b"].codes_to_values(qm.b))
    bias = np.concatenate([b, np.zeros_like(b)])[None]
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=h)
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "lstm",
        [helper.make_tensor_value_info("X", f32, [t_len, n, qm.input_size])],
        [
            helper.make_tensor_value_info("Y", f32, [t_len, 1, n, h]),
            helper.make_tensor_value_info("Y_h", f32, [1, n, h]),
            helper.make_tensor_value_info("Y_c", f32, [1, n, h]),
        ],
        initializer=[numpy_helper.from_array(v, k) for k, v in {"W": w, "R": r, "B": bias}.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def best_times(fns, repeats: int, rounds: int = 3) -> list[float]:
    """Best wall time of each function over ``rounds`` rounds of ``repeats`` calls.

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
                t0 = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--t", type=int, default=100)
    ap.add_argument("--i", type=int, default=32)
    ap.add_argument("--h", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both sides (default: each library's own, one per core); "
        "--threads 1 compares one core against one core, steadier on a busy machine",
    )
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    qm = build_model(rng, args.i, args.h)
    x_codes = qm.formats["x"].from_float(rng.normal(size=(args.n, args.t, args.i)))
    x_onnx = np.ascontiguousarray(
        qm.formats["x"].codes_to_values(x_codes).astype(np.float32).transpose(1, 0, 2)
    )
    if args.threads:
        numba.set_num_threads(args.threads)
    session = onnx_session(qm, args.t, args.n, args.threads)

    t_fixed, t_ort = best_times(
        [lambda: run_fixed(qm, x_codes), lambda: session.run(None, {"X": x_onnx})], args.repeats
    )

    # both ran the same network: they differ by the tables' error and rounding, a few 1e-3
    h_fixed = qm.formats["h"].codes_to_values(run_fixed(qm, x_codes).h_codes)
    h_ort = session.run(None, {"X": x_onnx})[0][:, 0].transpose(1, 0, 2)
    if np.abs(h_fixed - h_ort).max() > SAME_NETWORK:
        raise SystemExit(
            f"the two sides disagree by {np.abs(h_fixed - h_ort).max():.3g} > {SAME_NETWORK}: "
            f"they did not run the same network, so the timing means nothing"
        )
    steps = args.n * args.t
    threads = args.threads or "default"
    print(
        f"batch N={args.n} T={args.t} I={args.i} H={args.h}, threads {threads}, "
        f"best of 3 x {args.repeats}"
    )
    print(f"  max |h_fixed - h_ort|     {np.abs(h_fixed - h_ort).max():.2e}")
    print(f"  bit-accurate run_fixed    {steps / t_fixed:12,.0f} sequence-steps/s")
    print(f"  onnxruntime float32 LSTM  {steps / t_ort:12,.0f} sequence-steps/s")
    print(f"  ratio fixed / ort         {t_ort / t_fixed:12.2f}   (target >= 0.5)")


if __name__ == "__main__":
    main()
