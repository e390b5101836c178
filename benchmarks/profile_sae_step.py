"""Kernel-time breakdown of sparseae's L1 SAE training step on a GPU (d 768, 16,384 latents,
batch 4,096, bf16 autocast), by default compiled and with the whole step in one CUDA graph: the
profiler records steps 16–25 and prints the kernels sorted by GPU time (divide by 10 for a step).

    python benchmarks/profile_sae_step.py [--no-graph] [--no-compile] [--bf16-weights]
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from sparseae.models import create_model
from sparseae.train import Callback, TrainConfig, train


class Profile(Callback):
    """Profiles the GPU between the end of step ``start`` and the end of step ``stop``."""

    def __init__(self, start: int = 15, stop: int = 25) -> None:
        self.start, self.stop = start, stop
        self.profiler = profile(activities=[ProfilerActivity.CUDA])

    def on_step(self, step: int, model) -> None:
        if step == self.start:
            torch.cuda.synchronize()
            self.profiler.start()
        elif step == self.stop:
            torch.cuda.synchronize()
            self.profiler.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-graph", dest="graph", action="store_false")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--bf16-weights", action="store_true", help="the step on bf16 copies of the weights")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this profile needs a CUDA GPU")
    torch.manual_seed(0)
    X = torch.randn(4096 * 8, 768, device="cuda")
    model = create_model("sparse_ae_l1", 768, 16384, sparsity_weight=5e-3)
    callback = Profile()
    train(model, X, TrainConfig(optimizer="adam", learning_rate=1e-4, batch_size=4096, max_epochs=4, device="cuda",
                                amp=True, compile=args.compile, cuda_graph=args.graph,
                                shuffle=False, bf16_weights=args.bf16_weights), callbacks=[callback])
    print(callback.profiler.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=90))


if __name__ == "__main__":
    main()
