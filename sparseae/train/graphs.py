"""The whole training step in one CUDA graph (``TrainConfig(cuda_graph=True)``).

On a GPU, the step of a mid-sized model is a few dozen short kernels, and launching them one by
one from Python can cost more than running them. Captured once in a CUDA graph, the step —
forward, backward, gradient projection, clipping, the optimizer, the constraints and the running
sums of the logged terms — is replayed with a single launch.

The capture follows PyTorch's recipe for whole-network graphs: a few eager warm-up steps on a side
stream (they compile, allocate the gradients and the optimizer state, and train like any other
step), then one capture into the graph's private memory pool; before each replay the batch is
copied into a static input buffer. A batch of another size (the last one of an epoch) runs
eagerly on the same parameters and optimizer state. Requirements, checked where they can be:

- a CUDA device, a single process (not under torch.distributed), the Adam optimizer (made
  ``capturable``, with each group's learning rate held in a device tensor, so the per-epoch
  schedule applies without capturing again);
- a step that is pure tensor work: no host synchronisation (``.item()``, data-dependent Python
  branches) and no Python-side state (tested on the GPU: the L1 and TopK SAEs and the denoising
  AE, whose noise is drawn inside the graph); a step that cannot be
  captured raises :class:`~sparseae.errors.ConfigError` naming the reason.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from ..errors import ConfigError

StepFn = Callable[[torch.Tensor, "torch.Tensor | None"], dict[str, torch.Tensor]]


class GraphedStep:
    """Calls ``step_fn(x, y) -> terms`` (one optimizer step; terms: scalar tensors) and keeps
    ``sums[name] = Σ batch_size · term`` over the batches since :meth:`reset_sums`, replaying a
    CUDA graph of the step for every batch of ``batch_size`` rows after ``warmup`` eager ones."""

    warmup = 3

    def __init__(self, step_fn: StepFn, batch_size: int, device: torch.device) -> None:
        if device.type != "cuda":
            raise ConfigError(f"cuda_graph needs a CUDA device; the model is on {device}")
        self.step_fn, self.batch_size, self.device = step_fn, batch_size, device
        self.sums: dict[str, torch.Tensor] = {}
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: torch.Tensor | None = None
        self.static_y: torch.Tensor | None = None
        self.warmed_up = 0
        self.stream = torch.cuda.Stream(device)
        self._capturing = False

    def reset_sums(self) -> None:
        for value in self.sums.values():
            value.zero_()

    def _run(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        terms = self.step_fn(x, y)
        for name, value in terms.items():
            if name not in self.sums:
                if self._capturing:
                    raise ConfigError(f"the logged term {name!r} first appeared while the step was "
                                      "being captured; the step must log the same terms every time")
                self.sums[name] = torch.zeros((), dtype=torch.float32, device=self.device)
            self.sums[name].add_(value.detach().float() * x.shape[0])

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """One training step on the batch ``x`` (batch, n_features), targets ``y`` or None."""
        if x.shape[0] != self.batch_size:
            self._run(x, y)  # eagerly, on the same parameters and optimizer state
            return
        if self.graph is None:
            if self.warmed_up < self.warmup:
                self.stream.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(self.stream):
                    self._run(x, y)
                torch.cuda.current_stream(self.device).wait_stream(self.stream)
                self.warmed_up += 1
                return
            self._capture(x, y)
        self.static_x.copy_(x)
        if y is not None:
            self.static_y.copy_(y)
        self.graph.replay()

    def _capture(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        self.static_x = x.clone()
        self.static_y = None if y is None else y.clone()
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.device)
        self._capturing = True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                with torch.cuda.graph(graph):
                    self._run(self.static_x, self.static_y)
        except ConfigError:
            raise
        except Exception as exc:  # what a capture raises depends on the offending operation
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cuda_graph: this model's training step cannot be captured in a CUDA "
                              f"graph ({reason}); train without cuda_graph") from exc
        finally:
            self._capturing = False
        self.graph = graph
