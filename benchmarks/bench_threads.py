"""Claim: ``train.threads: auto`` (the default) trains small and busy-machine problems faster than
PyTorch's default thread count, and is not slower on large ones.

Trains, through ``sparseae.train``, an L1 SAE 784-256 (Adam) and the MLP 784-1000-10 of the
CAE/SDA fine-tuning (SGD), each at batch 10 and 256, with PyTorch's default thread count
(``TrainConfig(threads=None)``) and with ``threads="auto"``, first on the machine as it is
("idle": nothing of ours runs beside it) and then with a busy-loop process pinned to the last of
our CPUs ("busy": the other core of a 2-core machine taken). Steps/s is timed between a step
after the warm-up and the last step (median of ``--repeats``, the two variants alternating).
Prints one row per case: condition | model | batch | threads default/auto | steps/s default |
steps/s auto | speed-up, with the load average (other users of the machine count).

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/bench_threads.py [--steps 200 --repeats 3]

``--calibrate`` instead times 1 thread against all available cores for the L1 SAE 784-256 over a
range of batch sizes (the step's multiply-adds, :func:`sparseae.threads.step_work`, beside each),
the measurement :data:`sparseae.threads.WORK_PER_THREAD` comes from.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time

import numpy as np
import torch

from sparseae.models import create_model
from sparseae.models.deep import mlp_classifier
from sparseae.threads import available_cores, busy_cores, step_work
from sparseae.train import TrainConfig, train
from sparseae.train.trainer import Callback

DEFAULT_THREADS = torch.get_num_threads()  # PyTorch's own choice, before anything changes it


class StepClock(Callback):
    """Times the steps after the ``warm``-th and notes the thread count training ran on."""

    def __init__(self, warm: int) -> None:
        self.warm, self.start, self.end, self.last, self.threads = warm, 0.0, 0.0, 0, 0

    def on_step(self, step: int, model: torch.nn.Module) -> None:
        if step == self.warm:
            self.start, self.threads = time.perf_counter(), torch.get_num_threads()
        self.end, self.last = time.perf_counter(), step

    def steps_per_second(self) -> float:
        return (self.last - self.warm) / (self.end - self.start)


def load_data(n_rows: int) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from sparseae.data import load_mnist

        X, y = load_mnist(split="train")
        return X[:n_rows], y[:n_rows].astype(np.int64), "MNIST"
    except Exception:  # no MNIST here: random data of the same shape
        rng = np.random.default_rng(0)
        return (rng.uniform(0, 1, (n_rows, 784)).astype(np.float32), rng.integers(0, 10, n_rows),
                "random U[0,1]")


def run_case(model_name: str, batch: int, threads, X: np.ndarray, y: np.ndarray, steps: int,
             warm: int = 10) -> tuple[float, int]:
    """(steps/s, threads used) of ``steps`` training steps after ``warm`` ones."""
    rows = batch * (warm + steps)
    torch.manual_seed(0)
    if model_name == "sae":
        model = create_model("sparse_ae_l1", 784, 256, sparsity_weight=0.1)
        config = TrainConfig(batch_size=batch, max_epochs=1, device="cpu", threads=threads)
        targets = None
    else:
        model = mlp_classifier(784, 1000)
        config = TrainConfig(optimizer="sgd", learning_rate=1.0, batch_size=batch, max_epochs=1, device="cpu",
                             threads=threads)
        targets = y[:rows]
    clock = StepClock(warm)
    train(model, X[:rows], config, y=targets, callbacks=[clock])
    return clock.steps_per_second(), clock.threads


def spin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    while True:
        pass


def measure(cases, X, y, repeats: int, steps: int, condition: str) -> list[tuple]:
    rows = []
    for name, batch in cases:
        n_steps = max(40, steps * 10 // batch)
        results: dict[str, list[float]] = {"default": [], "auto": []}
        used = {}
        for _ in range(repeats):
            for variant, threads in (("default", None), ("auto", "auto")):
                rate, n = run_case(name, batch, threads, X, y, n_steps)
                results[variant].append(rate)
                used[variant] = n
        default, auto = statistics.median(results["default"]), statistics.median(results["auto"])
        label = "L1 SAE 784-256, Adam" if name == "sae" else "MLP 784-1000-10, SGD"
        rows.append((condition, label, batch, f"{used['default']}/{used['auto']}", default, auto, auto / default))
        print(f"{condition:<5} | {label:<21} | {batch:>5} | {used['default']:>3}/{used['auto']:<3} | "
              f"{default:9.1f} | {auto:9.1f} | {auto / default:6.2f}×", flush=True)
    return rows


def calibrate(X: np.ndarray, y: np.ndarray, repeats: int, steps: int) -> None:
    cores = available_cores()
    print(f"L1 SAE 784-256, Adam: 1 thread against {cores}; busy cores now {busy_cores()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'batch':>5} | {'work (M)':>8} | {'1 thread':>9} | {f'{cores} threads':>9} | ratio")
    model = create_model("sparse_ae_l1", 784, 256)
    for batch in (1, 4, 10, 32, 100, 256, 1024):
        n_steps = max(20, steps * 10 // batch)
        rates: dict[int, list[float]] = {1: [], cores: []}
        for _ in range(repeats):
            for n in rates:
                rates[n].append(run_case("sae", batch, n, X, y, n_steps)[0])
        one, many = statistics.median(rates[1]), statistics.median(rates[cores])
        print(f"{batch:>5} | {step_work(model, batch) / 1e6:8.2f} | {one:9.1f} | {many:9.1f} | {many / one:5.2f}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps at batch 10 (fewer at larger batches)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--conditions", nargs="+", default=["idle", "busy"], choices=["idle", "busy"])
    parser.add_argument("--calibrate", action="store_true", help="time 1 thread against all cores by batch size")
    args = parser.parse_args()
    X, y, data = load_data(40_000)
    if args.calibrate:
        return calibrate(X, y, args.repeats, args.steps)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    print(f"sparseae.train on {data}; PyTorch's default threads {DEFAULT_THREADS}, available cores "
          f"{available_cores()} (CPUs {cpus}); load average at start {os.getloadavg()[0]:.2f}")
    print(f"{'cond.':<5} | {'model':<21} | {'batch':>5} | {'threads':>7} | {'steps/s':>9} | {'steps/s':>9} | speed-up")
    print(f"{'':<5} | {'':<21} | {'':>5} | {'def/auto':>7} | {'default':>9} | {'auto':>9} |")
    cases = [("sae", 10), ("sae", 256), ("mlp", 10), ("mlp", 256)]
    for condition in args.conditions:
        busy = None
        if condition == "busy":
            busy = multiprocessing.get_context("spawn").Process(target=spin, args=(cpus[-1],), daemon=True)
            busy.start()
            time.sleep(0.5)
        try:
            print(f"({condition}: busy cores seen by auto {busy_cores()}, load average {os.getloadavg()[0]:.2f})")
            measure(cases, X, y, args.repeats, args.steps, condition)
        finally:
            if busy is not None:
                busy.terminate()
                busy.join()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
