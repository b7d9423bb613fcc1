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
