"""Out-of-core data: sharded .npy files seen as one array, streamed by the trainer; an activation
store that writes a network layer's outputs to shards."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparseae.data import ShardedArray, load_dataset, store_activations, write_shards
from sparseae.errors import DataError
from sparseae.models import create_model
from sparseae.train import TrainConfig, train


@pytest.fixture
def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(1000, 12)).astype(np.float32)


def test_shards_behave_like_the_concatenated_array(data, tmp_path):
    sharded = write_shards((data[i:i + 64] for i in range(0, 1000, 64)), tmp_path / "s", rows_per_shard=300)
    assert [f.name for f in sharded.files] == [f"shard-0000{i}.npy" for i in range(4)]
    assert sharded.shape == (1000, 12) and len(sharded.shards) == 4 and sharded.shards[-1].shape[0] == 100
    rows = np.random.default_rng(1).permutation(1000)[:77]
    np.testing.assert_array_equal(sharded[rows], data[rows])
    np.testing.assert_array_equal(sharded[250:650], data[250:650])
    np.testing.assert_array_equal(sharded[-1], data[-1])
    assert isinstance(sharded.shards[0], np.memmap)
    assert load_dataset("shards", path=str(tmp_path / "s")).X.shape == (1000, 12)


def test_training_streams_shards_like_an_in_memory_array(data, tmp_path):
    sharded = write_shards([data], tmp_path / "s", rows_per_shard=256)
    weights = []
    for X in (data, sharded):
        torch.manual_seed(0)
        model = create_model("topk_sae", 12, 24, k=3, aux_weight=0.0)
        history = train(model, X, TrainConfig(max_epochs=3, batch_size=50, learning_rate=1e-2)).history
        weights.append(model.decoder.weight.detach().clone())
        assert history[-1]["train_loss"] < history[0]["train_loss"]
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-4, atol=1e-5)


def test_shard_errors(tmp_path, data):
    with pytest.raises(DataError, match="no .npy shards"):
        ShardedArray(tmp_path / "nothing")
    np.save(tmp_path / "a.npy", data)
    np.save(tmp_path / "b.npy", data[:, :5])
    with pytest.raises(DataError, match="differ in width"):
        ShardedArray([tmp_path / "a.npy", tmp_path / "b.npy"])
    np.save(tmp_path / "c.npy", data[0])
    with pytest.raises(DataError, match="must be 2-D"):
        ShardedArray([tmp_path / "c.npy"])
    with pytest.raises(DataError, match="already holds"):
        write_shards([data], tmp_path)


def test_activation_store_writes_a_layers_outputs(tmp_path):
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.ReLU(), torch.nn.Linear(10, 4))
    batches = [torch.randn(5, 7, 6) for _ in range(3)]  # (batch, tokens, d): flattened to rows
    store = store_activations(network, network[1], batches, tmp_path / "acts", rows_per_shard=40)
    assert store.shape == (105, 10) and len(store.shards) == 3
    expected = torch.cat([torch.relu(network[0](b)).reshape(-1, 10) for b in batches]).detach().numpy()
    np.testing.assert_allclose(store[np.arange(105)], expected, rtol=1e-6)
    assert not network[1]._forward_hooks  # the hook is removed


def test_rows_as_tensor_copies_a_read_only_memory_map(data, tmp_path):
    from sparseae.validation import rows_as_tensor

    np.save(tmp_path / "x.npy", data)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert not mapped.flags.writeable
    rows = rows_as_tensor(mapped, 10, 20, dtype=torch.float64)
    assert rows.dtype == torch.float64 and rows.shape == (10, 12)
    np.testing.assert_array_equal(rows.numpy(), data[10:20])
    same_dtype = rows_as_tensor(mapped, 0, 5)  # float32 as stored: a copy, not a view of read-only memory
    assert not np.shares_memory(same_dtype.numpy(), mapped)
    np.testing.assert_array_equal(same_dtype.numpy(), data[:5])
    in_memory = data.copy()
    assert np.shares_memory(rows_as_tensor(in_memory, 0, 5).numpy(), in_memory)  # writable: no copy
    sharded = write_shards([data], tmp_path / "s", rows_per_shard=256)
    for X in (data, sharded, torch.from_numpy(data)):
        torch.testing.assert_close(rows_as_tensor(X, 250, 270), torch.from_numpy(data[250:270]))
