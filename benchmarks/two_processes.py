"""What this machine gives two busy processes at the moment, for benchmarks that compare 2 workers
with 1 on a machine shared with other jobs.

:func:`two_process_gain` runs a fixed piece of CPU work (hashing and copying an 8 MiB buffer) in
one process, then in two at once, and returns the throughput of the two over the one: 2.0 on two
idle cores, less when other jobs take a share of them. A 2-worker / 1-worker ratio is read beside
it (a 1.7x target on a machine that gives two processes 1.8x is ``1.7 / 1.8`` of that gain).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import resource
import statistics
import time

_BUFFER = bytes(8 << 20)


def _work(rounds: int) -> None:
    for _ in range(rounds):
        hashlib.sha256(_BUFFER).digest()
        bytearray(_BUFFER)


def two_process_gain(rounds: int = 40) -> float:
    """Work done per second by two processes at once over one process alone (fork start)."""
    context = multiprocessing.get_context("fork")
    start = time.perf_counter()
    _work(rounds)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    processes = [context.Process(target=_work, args=(rounds,)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    together = time.perf_counter() - start
    return 2 * alone / together


def load() -> str:
    """The 1-minute load average, as ``uptime`` prints it."""
    return f"{os.getloadavg()[0]:.2f}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def interleaved(methods: dict, rounds: int, report=None) -> tuple[dict[str, list[float]], list[float]]:
    """Run every method of ``methods`` (label -> a call returning its figure) once per round,
    rounds one after the other, with :func:`two_process_gain` measured at the start of each round.

    Returns ``({label: [figure of each round]}, [gain of each round])``; ``report(round, figures,
    gain)`` is called after each round.
    """
    figures: dict[str, list[float]] = {label: [] for label in methods}
    gains = []
    for round_ in range(rounds):
        gains.append(two_process_gain())
        for label, call in methods.items():
            figures[label].append(call())
        if report is not None:
            report(round_, {label: values[-1] for label, values in figures.items()}, gains[-1])
    return figures, gains


def ratios(top: list[float], bottom: list[float]) -> str:
    """``"median (each round)"`` of the per-round ratios ``top / bottom``."""
    values = [a / b for a, b in zip(top, bottom)]
    return f"{median(values):5.2f}x  (rounds: {' '.join(f'{v:.2f}' for v in values)})"



def cpu_seconds() -> tuple[float, float]:
    """CPU seconds so far of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


#: the loader runs whose start and cores the loader benchmarks print: label -> (workers, uint8,
#: float32 inputs made in the training process, Paddle's workers)
LOADER_RUNS = [("0 workers", (0, True, True, False)), ("2 workers", (2, True, True, False)),
               ("Paddle's 2 workers", (2, True, True, True))]


class LoaderFigures:
    """What each run of a loader gave, by the run's key: :attr:`first` seconds to its first batch,
    :attr:`after_first` samples/s from that batch on (starting the workers, each epoch, left out as a
    long epoch hides it), :attr:`cores` the cores kept busy (this process, its workers)."""

    def __init__(self):
        self.first: dict[tuple, list[float]] = {}
        self.after_first: dict[tuple, list[float]] = {}
        self.cores: dict[tuple, list[tuple[float, float]]] = {}

    def run(self, key: tuple, batches, step) -> int:
        """Iterate ``batches``, calling ``step(batch)`` (which returns the batch's samples) on
        each; record the run under ``key`` and return its samples."""
        begin, cpu_begin = time.perf_counter(), cpu_seconds()
        samples = first = 0
        for batch in batches:
            size = step(batch)
            if not samples:
                first, start = size, time.perf_counter()
                self.first.setdefault(key, []).append(start - begin)
            samples += size
        end, (own, children) = time.perf_counter(), cpu_seconds()
        self.after_first.setdefault(key, []).append((samples - first) / (end - start))
        wall = end - begin
        self.cores.setdefault(key, []).append(((own - cpu_begin[0]) / wall, (children - cpu_begin[1]) / wall))
        return samples

    def start_and_cores(self, last: int | None = None) -> tuple[str, str]:
        """The lines for :data:`LOADER_RUNS` (medians over the ``last`` runs of each, or all):
        seconds to the first batch of an epoch, and the cores kept busy."""
        first = {key: values[-last if last else 0:] for key, values in self.first.items()}
        cores = {key: values[-last if last else 0:] for key, values in self.cores.items()}
        start = "first batch of an epoch after (median s): " + ", ".join(
            f"{label} {median(first[key]):.3f}" for label, key in LOADER_RUNS)
        busy = "cores kept busy (median; this process + its workers): " + ", ".join(
            f"{label} {median([c[0] for c in cores[key]]):.2f} + {median([c[1] for c in cores[key]]):.2f}"
            for label, key in LOADER_RUNS)
        return start, busy
