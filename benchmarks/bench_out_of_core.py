"""Claim: training streams a sharded dataset several times larger than the process's memory with
bounded memory.

Writes ``--rows`` × ``--features`` float32 rows into ``.npy`` shards (generated batch by batch,
never whole in memory), then trains a TopK SAE for one epoch on the :class:`ShardedArray`
(random order, rows read per batch from the memory maps). A sampling thread records the peak
anonymous memory (RssAnon: what the process itself holds) and the peak file-backed resident
pages (RssFile: page cache mapped in, which the kernel reclaims under pressure).

``--memory-limit-mib M`` trains under a hard limit: ``RLIMIT_DATA`` = M MiB (the heap and every
private anonymous mapping; the read-only shard memory maps are file-backed and do not count), so
an allocation that would pass it fails with ``MemoryError``. Without ``--rows``, the dataset is
then sized to ``--times`` (default 4) × the limit.

    python benchmarks/bench_out_of_core.py --rows 1000000 --features 768 --out /tmp/shards
    python benchmarks/bench_out_of_core.py --memory-limit-mib 1024 --times 4   # 4 GiB under a 1 GiB limit
"""
from __future__ import annotations

import argparse
import resource
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import torch

from sparseae.data import write_shards
from sparseae.models import create_model
from sparseae.train import TrainConfig, train


def memory_kib() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM", "VmData"):
            fields[key] = int(value.split()[0])
    return fields


class PeakSampler(threading.Thread):
    def __init__(self, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.every, self.peak, self.stopped = every, {"RssAnon": 0, "RssFile": 0}, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for key, value in memory_kib().items():
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], value)
            time.sleep(self.every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="default 1,000,000, or --times × the limit")
    parser.add_argument("--memory-limit-mib", type=int, default=None, help="RLIMIT_DATA while training")
    parser.add_argument("--times", type=float, default=4.0, help="dataset size / memory limit")
    parser.add_argument("--features", type=int, default=768)
    parser.add_argument("--latents", type=int, default=512)
    parser.add_argument("--rows-per-shard", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--out", default="/tmp/sparseae_shards")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the shards afterwards")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rows is None:
        args.rows = (1_000_000 if args.memory_limit_mib is None else
                     int(args.times * args.memory_limit_mib * 2**20 / (4 * args.features)) + 1)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(64, args.features)).astype(np.float32)
    generated = (rng.normal(size=(10_000, 64)).astype(np.float32) @ basis
                 for _ in range(0, args.rows, 10_000))
    started = time.perf_counter()
    data = write_shards(generated, out, rows_per_shard=args.rows_per_shard)
    written = time.perf_counter() - started
    if args.memory_limit_mib is not None:
        limit = args.memory_limit_mib * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    baseline = memory_kib()
    sampler = PeakSampler()
    sampler.start()
    model = create_model("topk_sae", args.features, args.latents, k=32, aux_weight=0.0)
    started = time.perf_counter()
    history = train(model, data, TrainConfig(max_epochs=1, batch_size=args.batch_size, learning_rate=1e-3))
    seconds = time.perf_counter() - started
    sampler.stopped.set()
    sampler.join()
    size_mib = data.nbytes / 2**20
    print(f"{'dataset':>12} | {'shards':>6} | {'write s':>7} | {'train s':>7} | {'rows/s':>9} | "
          f"{'peak RssAnon':>12} | {'peak RssFile':>12} | {'dataset / RssAnon':>17}")
    anon, mapped = sampler.peak["RssAnon"] / 1024, sampler.peak["RssFile"] / 1024
    print(f"{size_mib:9.0f} MiB | {len(data.shards):6d} | {written:7.1f} | {seconds:7.1f} | "
          f"{args.rows / seconds:9.0f} | {anon:8.0f} MiB | {mapped:8.0f} MiB | {size_mib / anon:17.1f}")
    if args.memory_limit_mib is not None:
        print(f"trained under RLIMIT_DATA = {args.memory_limit_mib} MiB (VmData at the start "
              f"{baseline['VmData'] / 1024:.0f} MiB): dataset / limit = {size_mib / args.memory_limit_mib:.1f}")
    print(f"(RssAnon before training: {baseline['RssAnon'] / 1024:.0f} MiB, torch and the model included; "
          f"loss {history.history[0]['train_loss']:.3f}; {args.threads} thread(s))")
    if not args.keep:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
