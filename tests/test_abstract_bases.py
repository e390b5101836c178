"""The trainer's abstract bases (issue 23): ``Logger`` and ``StepSchedule`` cannot be built
without their abstract methods, and every concrete subclass in the package has them."""
from __future__ import annotations

import inspect

import pytest

from sparseae.train import callbacks, loggers
from sparseae.train.callbacks import StepSchedule
from sparseae.train.loggers import Logger


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_the_bases_are_abstract_in_exactly_their_hooks():
    assert Logger.__abstractmethods__ == frozenset({"log_params", "log_metrics"})
    assert StepSchedule.__abstractmethods__ == frozenset({"apply"})
    with pytest.raises(TypeError, match="abstract"):
        Logger()
    with pytest.raises(TypeError, match="abstract"):
        StepSchedule()


def test_a_subclass_missing_a_hook_cannot_be_built():
    class MetricsOnly(Logger):
        def log_metrics(self, metrics, step):
            pass

    class Nothing(StepSchedule):
        pass

    with pytest.raises(TypeError, match="log_params"):
        MetricsOnly()
    with pytest.raises(TypeError, match="apply"):
        Nothing()


def test_every_subclass_in_the_package_implements_the_hooks():
    ours = [cls for cls in _subclasses(Logger) + _subclasses(StepSchedule)
            if cls.__module__ in (loggers.__name__, callbacks.__name__)]
    names = {cls.__name__ for cls in ours}
    assert {"_PhaseView", "TensorBoardLogger", "MLflowLogger", "WandbLogger", "LearningRateSchedule",
            "SparsityWarmup", "KAnnealing", "DeadLatentResampling"} <= names
    assert [cls.__name__ for cls in ours if inspect.isabstract(cls)] == []
