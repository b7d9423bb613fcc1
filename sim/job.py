"""What one simulation run does, written by the caller and read inside the simulator.

The caller (``lstmfx simulate``, pytest, the benchmark) knows the network and draws the
sequences; the cocotb test runs in the simulator's own Python. A :class:`Job` is the
hand-over: a folder with ``job.json`` (phases, pauses, the manifest the design must equal)
and one ``.npz`` per phase holding the input codes and the network's expected output
codes ``y`` (SPEC §2b: the top LSTM layer's ``h`` or the last dense layer's ``out``).
The test writes ``results.json`` into the same folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from model.qmodel import QuantizedNetwork
from sim.drivers import pause_generator
from sim.sequences import expected_outputs

JOB_ENV = "LSTMFX_SIM_JOB"


@dataclass
class Phase:
    """A batch of sequences sent back to back under one idle and back-pressure setting.

    ``resets`` maps a sequence's index to the number of its steps after which the design
    is reset (in the middle of that sequence). ``timing`` phases are where cycles per step
    (back to back) or, with ``isolated`` (each sequence waits for an idle core), the
    latency is measured; they should have no pauses.
    """

    name: str
    sequences: list[np.ndarray]
    idle: str = "none"
    backpressure: str = "none"
    timing: bool = False
    isolated: bool = False
    resets: dict[int, int] = field(default_factory=dict)

    def __post_init__(self):
        pause_generator(self.idle)
        pause_generator(self.backpressure)
        for s, after in self.resets.items():
            t_len = len(self.sequences[s])
            if not 1 <= after < t_len:
                raise ValueError(
                    f"phase {self.name!r}: reset after {after} steps of sequence {s} needs "
                    f"1 <= steps < {t_len}"
                )

    @property
    def steps(self) -> int:
        return int(sum(len(x) for x in self.sequences))


@dataclass
class Job:
    """The whole run: the network the design must equal, its phases, and run options."""

    manifest: dict
    phases: list[Phase]
    seed: int = 0
    progress: bool = True
    diagnose: bool = True
    label: str = ""

    def write(self, folder) -> Path:
        """Write the job (with the network's expected outputs) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        net = QuantizedNetwork.from_manifest(self.manifest)
        phases = []
        for k, ph in enumerate(self.phases):
            expected, overflow = expected_outputs(net, ph.sequences)
            lengths = np.array([len(x) for x in ph.sequences], dtype=np.int64)
            x = np.concatenate(ph.sequences).astype(np.int64)
            y = np.concatenate([np.reshape(e, (-1, net.output_size)) for e in expected])
            np.savez(folder / f"phase{k}.npz", x=x, lengths=lengths, y=y.astype(np.int64))
            meta = {key: v for key, v in asdict(ph).items() if key != "sequences"}
            meta["resets"] = {str(s): int(a) for s, a in ph.resets.items()}
            meta.update(file=f"phase{k}.npz", overflow=overflow)
            phases.append(meta)
        (folder / "manifest.json").write_text(json.dumps(self.manifest))
        job = {
            "manifest": "manifest.json",
            "phases": phases,
            "seed": self.seed,
            "progress": self.progress,
            "diagnose": self.diagnose,
            "label": self.label,
        }
        path = folder / "job.json"
        path.write_text(json.dumps(job, indent=1))
        results = folder / "results.json"
        if results.exists():
            results.unlink()
        return path


class Sequences:
    """A phase's input sequences, ``[T, I]`` codes each, cut from one array when asked for:
    no Python object per sequence, so a bench's memory stays flat in their number."""

    def __init__(self, x: np.ndarray, lengths: np.ndarray):
        self._x = x
        self._bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self._bounds) - 1

    def __getitem__(self, s):
        if isinstance(s, slice):
            return [self[k] for k in range(*s.indices(len(self)))]
        if s < 0:
            s += len(self)
        if not 0 <= s < len(self):
            raise IndexError(f"sequence {s} of {len(self)}")
        return self._x[self._bounds[s] : self._bounds[s + 1]]

    def __iter__(self):
        return (self[k] for k in range(len(self)))


def load_phase(folder: Path, meta: dict):
    """(sequences, expected) of one phase: :class:`Sequences` of ``[T, I]`` codes, and
    the ``[beats, n]`` expected output codes."""
    data = np.load(folder / meta["file"])
    return Sequences(data["x"], data["lengths"]), data["y"]
