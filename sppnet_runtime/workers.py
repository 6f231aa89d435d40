"""Windows shared out over processes, one ONNX Runtime session each (``--workers N``).

On a CPU, N processes of one thread each keep every core busy through the whole forward
pass, where one process's intra-op threads idle in the graph's serial parts (NMS, small
convolutions, the Python around it). ``WindowPool.detect`` has the contract of the
``detect`` that ``imagery.windows.detect_in_windows`` takes: the parent reads the windows
and merges the boxes, exactly as one process does, so the output is that of one process
whose session has the workers' thread count; the workers only run the graph.
"""
from __future__ import annotations

import multiprocessing
import os
import threading

import numpy as np

_detector = None  # the worker's own session


def _start(path: str, threads: int, ready) -> None:
    global _detector
    from .detector import OnnxDetector

    _detector = OnnxDetector(path, threads=threads)
    ready.wait()  # every worker has its session: the first windows wait for no start-up


def _detect(job: tuple[np.ndarray, bool]) -> dict:
    window, native = job
    return _detector(window, native)


class WindowPool:
    """``workers`` processes, each with an ``OnnxDetector(path, threads)``.

    Args:
        path: the model file (each worker loads its own session from it).
        workers: processes (>= 2; one process needs no pool).
        threads: ONNX Runtime intra-op threads per worker (1: the cores go to processes).
    """

    def __init__(self, path: str | os.PathLike, workers: int, threads: int = 1):
        if workers < 2:
            raise ValueError(f"workers must be at least 2, got {workers}")
        # spawn: a clean interpreter per worker, whatever threads the parent started.
        context = multiprocessing.get_context("spawn")
        self.workers = workers
        ready = context.Barrier(workers + 1)
        self.pool = context.Pool(workers, initializer=_start, initargs=(str(path), threads, ready))
        try:
            ready.wait(timeout=300)  # here, not inside the first image's time
        except threading.BrokenBarrierError:
            self.pool.terminate()
            raise RuntimeError(f"{workers} worker processes did not load {path} within 300 s") from None

    def detect(self, windows: list[np.ndarray], native: bool) -> list[dict]:
        """Each (h, w, 3) uint8 RGB window's detections, in order (``OnnxDetector.__call__``)."""
        return self.pool.map(_detect, [(np.ascontiguousarray(w), native) for w in windows], chunksize=1)

    def close(self) -> None:
        self.pool.close()
        self.pool.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            self.pool.terminate()
