"""CKKS encryption spread over worker processes.

TenSEAL encrypts on one thread, so a site with several cores encrypts a large update faster by
handing its ciphertexts (one per N/2 values) to a pool of processes, each holding the site's
context. The pool is started once per job (:class:`EncryptionPool`; workers load the context when
they start, which takes about a second) and used for every round; with one worker, or an update
that fits in one ciphertext, encryption stays in the calling process.

The context sent to the workers holds the secret key (symmetric encryption needs it): it goes
through the pool's pipe to processes of the same site on the same machine, never to disk.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import tenseal as ts

_WORKER_CONTEXT: ts.Context | None = None


def _start_worker(context: bytes) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = ts.context_from(context)


def _encrypt_chunk(values: np.ndarray) -> bytes:
    return ts.ckks_vector(_WORKER_CONTEXT, values.tolist()).serialize()


def encrypt_chunks(ctx: ts.Context, chunks: Sequence[np.ndarray]) -> list[bytes]:
    """Each chunk encrypted under ``ctx`` in this process, serialised without the context."""
    return [ts.ckks_vector(ctx, c.tolist()).serialize() for c in chunks]


class EncryptionPool:
    def __init__(self, ctx: ts.Context, workers: int) -> None:
        """Args: ctx: the site's context (secret for symmetric encryption); workers: processes (>= 2;
        more than this machine's cores only adds overhead)."""
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 2:
            raise ValueError(f"an encryption pool needs workers >= 2, got {workers!r} (1: encrypt in process)")
        self.ctx, self.workers = ctx, workers
        data = ctx.serialize(save_public_key=True, save_secret_key=True, save_galois_keys=False, save_relin_keys=False)
        # spawn, not fork: the caller (a FLARE job process) runs threads, which fork does not carry safely
        self._executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(data,))

    def encrypt(self, chunks: Sequence[np.ndarray]) -> list[bytes]:
        if len(chunks) < 2:
            return encrypt_chunks(self.ctx, chunks)
        per_task = max(1, -(-len(chunks) // (4 * self.workers)))  # a few tasks per worker: balanced, little IPC
        return list(self._executor.map(_encrypt_chunk, chunks, chunksize=per_task))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EncryptionPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_workers() -> int:
    """This machine's usable cores (the site's own machine in production)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
