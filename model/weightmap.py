"""Run-time weights (SPEC §5b): where each weight code lives on the AXI4-Lite bus, and the
words a host writes there.

The map lists, in the order of the manifest's ``layers`` and of each layer's tensors
(LSTM: ``w``, ``r``, ``b``, then ``p`` with peepholes; dense: ``w``, ``b``), one entry
``{"layer": l, "tensor": t, "base": A, "rows": R, "cols": C}``: ``l`` is 1-based over all
layers (the position in the manifest's ``layers`` list: ``lstm1`` is 1, the first dense
layer after two LSTM layers is 3); a vector is one row (``rows`` 1, ``cols`` its length);
the code of row ``i``, column ``j`` sits in the 32-bit word at byte address
``A + 4 * (i * C + j)``.

Bases: each tensor takes a region of ``4 * 2**ceil(log2(R * C))`` bytes aligned to its
own size, in map order, from address 0. A decoder then finds the tensor by comparing the
address bits above the region with one constant, and the word index ``i * C + j`` is the
address bits inside it, with no subtraction; the gaps cost address space only.
"""

from __future__ import annotations

import numpy as np

from model.formats import Format

#: the tensors of each layer kind, in map order (``p`` only with peepholes)
LAYER_TENSORS = {"lstm": ("w", "r", "b", "p"), "dense": ("w", "b")}
#: bytes per code on the bus
WORD_BYTES = 4


def layer_tensors(layer) -> list[str]:
    """The weight tensors of ``layer`` in map order."""
    names = LAYER_TENSORS[layer.kind]
    return [t for t in names if t != "p" or getattr(layer, "peephole", False)]


def tensor_codes(layer, tensor: str) -> np.ndarray:
    """The codes of one tensor of a quantized layer as ``[rows, cols]`` (a vector: one row)."""
    arr = np.asarray(getattr(layer, tensor), dtype=np.int64)
    return arr.reshape(1, -1) if arr.ndim == 1 else arr


def region_bytes(rows: int, cols: int) -> int:
    """Bytes of the aligned region that holds a ``rows`` x ``cols`` tensor."""
    return WORD_BYTES * (1 << max(0, (rows * cols - 1).bit_length()))


def weight_map(network) -> list[dict]:
    """The manifest's ``hardware.weight_map`` of a quantized network (see the module doc)."""
    out, addr = [], 0
    for number, layer in enumerate(network.layers, start=1):
        for tensor in layer_tensors(layer):
            rows, cols = tensor_codes(layer, tensor).shape
            size = region_bytes(rows, cols)
            addr = -(-addr // size) * size
            out.append(
                {"layer": number, "tensor": tensor, "base": addr, "rows": rows, "cols": cols}
            )
            addr += size
    return out


def address_bits(wmap: list[dict]) -> int:
    """Width of a byte address that reaches every word of the map (at least 3)."""
    end = max(e["base"] + region_bytes(e["rows"], e["cols"]) for e in wmap)
    return max(3, (end - 1).bit_length())


def tensor_format(network, entry: dict) -> Format:
    """The format of the tensor a map entry names."""
    return network.layers[entry["layer"] - 1].formats[entry["tensor"]]


def weight_words(network, wmap: list[dict] | None = None) -> list[tuple[int, int]]:
    """(byte address, 32-bit word) for every weight code of ``network``, in map order,
    row-major within a tensor. The word is the code as a read returns it: two's complement
    over 32 bits (``fixed``) or the code itself (``ufixed``); a write of it stores the code."""
    wmap = weight_map(network) if wmap is None else wmap
    out = []
    for e in wmap:
        codes = tensor_codes(network.layers[e["layer"] - 1], e["tensor"]).ravel()
        for k, code in enumerate(codes.tolist()):
            out.append((e["base"] + WORD_BYTES * k, int(code) & 0xFFFFFFFF))
    return out


def decode_words(
    network, pairs, wmap: list[dict] | None = None
) -> dict[tuple[int, str], np.ndarray]:
    """The inverse of :func:`weight_words` for ``network``'s map and formats: {(layer,
    tensor): codes [rows, cols]} from (address, word) pairs, each word read as a write
    stores it (its low W bits, sign-extended for ``fixed``). Every word of the map must
    appear once; an address outside it is an error."""
    wmap = weight_map(network) if wmap is None else wmap
    where = {}
    for e in wmap:
        for k in range(e["rows"] * e["cols"]):
            where[e["base"] + WORD_BYTES * k] = (e, k)
    out = {(e["layer"], e["tensor"]): np.zeros((e["rows"], e["cols"]), np.int64) for e in wmap}
    seen = set()
    for addr, word in pairs:
        if addr not in where:
            raise ValueError(f"address {addr:#x} is outside the weight map")
        if addr in seen:
            raise ValueError(f"address {addr:#x} appears twice")
        seen.add(addr)
        e, k = where[addr]
        fmt = tensor_format(network, e)
        code = int(word) & ((1 << fmt.width) - 1)
        if fmt.signed and code >> (fmt.width - 1):
            code -= 1 << fmt.width
        out[(e["layer"], e["tensor"])].reshape(-1)[k] = code
    missing = len(where) - len(seen)
    if missing:
        raise ValueError(f"{missing} word(s) of the weight map have no value")
    return out


def words_bin(pairs) -> bytes:
    """The ``.bin`` a host sends: for each (address, word) pair, in order, the address then
    the word, each a little-endian unsigned 32-bit integer (8 bytes a pair)."""
    arr = np.array([[a, w] for a, w in pairs], dtype="<u4").reshape(-1)
    return arr.tobytes()


def read_words_bin(data: bytes) -> list[tuple[int, int]]:
    """The (address, word) pairs of a ``.bin`` written by :func:`words_bin`."""
    if len(data) % 8:
        raise ValueError(f"a weights .bin holds 8-byte (address, word) pairs; {len(data)} bytes")
    arr = np.frombuffer(data, dtype="<u4").reshape(-1, 2)
    return [(int(a), int(w)) for a, w in arr]


def c_header(network, pairs, *, guard: str, source: str = "") -> str:
    """A C header with, per tensor of the map, its base address, rows, cols, format (as a
    comment) and its words (row-major), and a table of all tensors for a write loop."""
    wmap = weight_map(network)
    by_addr = dict(pairs)
    prefix = network.name.lower()
    up = network.name.upper()
    lines = [
        f"/* Run-time weights of the lstmfx design {network.name}"
        + (f", from {source}" if source else "")
        + ".",
        " * Write each word with one 32-bit AXI4-Lite write (wstrb 0xf) to the slave's base",
        " * address + the byte address here; the code of row i, column j of a tensor is at",
        " * <TENSOR>_BASE + 4*(i*COLS + j). Words are the codes as 32-bit two's complement",
        " * (what a read returns); the design keeps the low W bits of each. Write only while",
        " * no sequence is in flight. Generated by lstmfx weights; do not edit. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        f"#define {up}_WEIGHT_WORDS {len(pairs)}u",
        f"#define {up}_WEIGHT_TENSORS {len(wmap)}u",
        "",
    ]
    names = network.layer_names
    arrays = []
    for e in wmap:
        lname = names[e["layer"] - 1]
        fmt = tensor_format(network, e)
        ident = f"{lname}_{e['tensor']}"
        n = e["rows"] * e["cols"]
        words = [by_addr[e["base"] + WORD_BYTES * k] for k in range(n)]
        lines += [
            f"/* {lname}.{e['tensor']} (layer {e['layer']}): {e['rows']} x {e['cols']} codes "
            f"of {fmt} */",
            f"#define {up}_{ident.upper()}_BASE 0x{e['base']:08x}u",
            f"#define {up}_{ident.upper()}_ROWS {e['rows']}u",
            f"#define {up}_{ident.upper()}_COLS {e['cols']}u",
            f"static const uint32_t {prefix}_{ident}[{n}] = {{",
        ]
        for k in range(0, n, 6):
            lines.append("    " + ", ".join(f"0x{w:08x}u" for w in words[k : k + 6]) + ",")
        lines += ["};", ""]
        arrays.append((e, f"{prefix}_{ident}", n))
    lines += [
        "/* every tensor: write words[k] to base + 4*k for k < count */",
        f"static const struct {{ uint32_t base; uint32_t count; const uint32_t *words; }} "
        f"{prefix}_weight_tensors[{len(arrays)}] = {{",
    ]
    lines += [f"    {{0x{e['base']:08x}u, {n}u, {ident}}}," for e, ident, n in arrays]
    lines += ["};", "", f"#endif /* {guard} */", ""]
    return "\n".join(lines)
