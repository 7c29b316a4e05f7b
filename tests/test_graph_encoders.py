"""Graph encoders: message passing against dense algebra, the JS adapter against its formula,
learning under a tiny budget, seeding, random-init baselines and label hygiene of InfoGraph*."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

os.environ.setdefault("MI_HARNESS_DATA_ROOT", "/work/shared/data")

from harness import Budget, registry  # noqa: E402
from harness.errors import UserError  # noqa: E402
from plugins.datasets.planetoid import NodeGraph  # noqa: E402
from plugins.datasets.tu import GraphSet  # noqa: E402
from plugins.encoders import js_pairs  # noqa: E402
from plugins.encoders.dgi import PermutedRows  # noqa: E402
from plugins.encoders.gin import GINEncoder, local_global_scores  # noqa: E402
from plugins.encoders.message_passing import (  # noqa: E402
    GCNLayer,
    GINLayer,
    GraphBatch,
    SparseMatrix,
    neighbour_sum,
    normalized_adjacency,
    sparse_or_dense,
    sum_pool,
)

GRAPH_ENCODERS = ["dgi", "infograph", "infograph_semi", "supervised_gin"]


def random_graph(nodes: int, edges: int, rng: np.random.Generator) -> sp.csr_matrix:
    src, dst = rng.integers(0, nodes, size=(2, edges))
    adj = sp.coo_matrix((np.ones(edges), (src, dst)), shape=(nodes, nodes)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float32)
    adj.setdiag(0)
    adj.eliminate_zeros()
    return adj.tocsr()


def small_graph_set(rng: np.random.Generator, count: int = 24, width: int = 5) -> GraphSet:
    """Two classes that differ in density, so the labels are learnable."""
    graphs, labels = [], []
    for g in range(count):
        n = int(rng.integers(5, 12))
        adj = random_graph(n, n * (1 + 2 * (g % 2)), rng).tocoo()
        x = np.eye(width, dtype=np.float32)[rng.integers(0, width, n)]
        graphs.append((x, np.vstack([adj.row, adj.col]).astype(np.int64)))
        labels.append(g % 2)
    return GraphSet(name="toy", graphs=graphs, labels=np.array(labels), num_classes=2)


def small_gcn(seed: int) -> tuple[sp.csr_matrix, np.ndarray, GCNLayer, np.random.Generator]:
    """A 30-node graph with sparse binary features and a GCN layer whose bias is not zero."""
    rng = np.random.default_rng(seed)
    adj = random_graph(30, 60, rng)
    x = (rng.random((30, 12)) < 0.2).astype(np.float32)
    layer = GCNLayer(12, 8)
    with torch.no_grad():
        layer.bias.normal_()
    return adj, x, layer, rng


def test_gcn_layer_matches_dense_normalized_propagation():
    adj, x, layer, _ = small_gcn(0)
    a = adj.toarray() + np.eye(30)
    d = np.diag(1.0 / np.sqrt(a.sum(1)))
    expected = layer.act(torch.tensor(d @ a @ d, dtype=torch.float32) @ (torch.tensor(x) @ layer.weight.weight.T)
                         + layer.bias)
    sparse_adj = SparseMatrix(normalized_adjacency(adj), "cpu")
    for features in (sparse_or_dense(x, "cpu", max_density=1.0), torch.tensor(x)):
        torch.testing.assert_close(layer(sparse_adj, features), expected, atol=1e-5, rtol=1e-5)


def test_gcn_gradients_through_the_sparse_products_and_the_prelu_match_dense_autograd():
    adj, x, layer, rng = small_gcn(1)
    with torch.no_grad():
        layer.act.weight.fill_(-0.3)
    upstream = torch.tensor(rng.normal(size=(2, 30, 8)), dtype=torch.float32)
    dense_adj = torch.tensor(normalized_adjacency(adj).toarray(), dtype=torch.float32)
    permutation = torch.tensor(rng.permutation(30))

    def gradients(adjacency, features, dense: bool):
        layer.zero_grad()
        projected = features @ layer.weight.weight.t()
        if dense:  # the clean and the corrupted graph, as DGI propagates them
            out = [F.prelu(dense_adj @ p + layer.bias, layer.act.weight) for p in (projected, projected[permutation])]
        else:
            out = [layer.propagate(adjacency, p) for p in (projected, PermutedRows.apply(projected, permutation))]
        (torch.stack(out) * upstream).sum().backward()
        return [p.grad.clone() for p in (layer.weight.weight, layer.bias, layer.act.weight)]

    expected = gradients(None, torch.tensor(x), dense=True)
    for got, want in zip(gradients(SparseMatrix(normalized_adjacency(adj), "cpu"),
                                   sparse_or_dense(x, "cpu", max_density=1.0), dense=False), expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_sparse_products_match_scipy_with_empty_rows_and_columns():
    rng = np.random.default_rng(3)
    matrix = sp.random(9, 7, density=0.3, random_state=4, dtype=np.float32).tolil()
    matrix[2, :] = 0  # a row with no entries sums to zero, forward and (as a column of the transpose) backward
    matrix[:, 5] = 0
    matrix = matrix.tocsr()
    dense = torch.tensor(rng.normal(size=(7, 4)), dtype=torch.float32, requires_grad=True)
    out = SparseMatrix(matrix, "cpu") @ dense
    upstream = rng.normal(size=(9, 4))
    (out * torch.tensor(upstream, dtype=torch.float32)).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), matrix @ dense.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense.grad.numpy(), matrix.T @ upstream, rtol=1e-5, atol=1e-6)


def test_neighbour_sum_and_gin_layer_match_dense_adjacency():
    rng = np.random.default_rng(1)
    adj = random_graph(20, 40, rng).tocoo()
    edge_index = torch.tensor(np.vstack([adj.row, adj.col]), dtype=torch.int64)
    x = torch.randn(20, 6)
    dense = torch.tensor(adj.toarray(), dtype=torch.float32)
    torch.testing.assert_close(neighbour_sum(x, edge_index), dense @ x)
    layer = GINLayer(6, 4).eval()
    expected = layer.norm(torch.relu(layer.mlp((torch.eye(20) + dense) @ x)))
    torch.testing.assert_close(layer(x, edge_index), expected)


def test_batched_graphs_encode_as_if_alone():
    rng = np.random.default_rng(2)
    data = small_graph_set(rng, count=5)
    encoder = GINEncoder(5, 8, 3).eval()
    together, nodes = encoder(GraphBatch(data.graphs, "cpu"))
    alone = torch.cat([encoder(GraphBatch([g], "cpu"))[0] for g in data.graphs])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    batch = GraphBatch(data.graphs, "cpu")
    torch.testing.assert_close(sum_pool(nodes, batch.graph_of, 5), together)


def test_local_global_scores_pick_each_nodes_own_graph():
    node_emb, graph_emb = torch.randn(7, 3), torch.randn(3, 3)
    graph_of = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    positive, negative = local_global_scores(node_emb, graph_emb, graph_of)
    full = node_emb @ graph_emb.T
    torch.testing.assert_close(positive, full[torch.arange(7), graph_of])
    for i in range(7):
        others = [g for g in range(3) if g != graph_of[i]]
        torch.testing.assert_close(negative[i], full[i, others])


def test_paired_js_objective_is_the_gan_js_formula():
    positive, negative = torch.randn(50) * 3, torch.randn(50, 9) * 3
    expected = -F.softplus(-positive).mean() - F.softplus(negative).mean()
    torch.testing.assert_close(js_pairs.js_objective(positive[:, None], negative), expected)
    expected_value = 1 + positive.mean() - negative.exp().mean()  # NWJ on S + 1
    torch.testing.assert_close(js_pairs.js_value(positive[:, None], negative), expected_value)


def test_js_objective_at_an_uninformative_critic_is_minus_log_four():
    zeros = torch.zeros(10)
    assert js_pairs.js_objective(zeros, zeros).item() == pytest.approx(-math.log(4))


@pytest.fixture(scope="module")
def cora():
    return registry.get("dataset", "cora").instantiate()


def test_dgi_learns_on_cora_within_a_tiny_budget(cora):
    encoder = registry.get("encoder", "dgi").instantiate({"hidden": 128, "lr": 0.005})
    emb = encoder.fit(cora, Budget(epochs=30), "cpu", seed=0)
    objective = [v for _, v in emb.trajectory]
    assert emb.features.shape == (2708, 128)
    # From the uninformative -log 4 the JS objective rises; the loss (its negative) falls.
    assert objective[0] == pytest.approx(-math.log(4), abs=0.1)
    assert objective[-1] > objective[0] + 0.3
    assert emb.diagnostics["final_mi_estimate"] > 0.0


def test_dgi_embeddings_are_reproducible_from_the_seed():
    rng = np.random.default_rng(3)
    adj = random_graph(40, 80, rng)
    graph = NodeGraph(name="toy", features=rng.random((40, 10)).astype(np.float32), adjacency=adj,
                      labels=np.zeros(40, dtype=np.int64), splits={})
    encoder = registry.get("encoder", "dgi").instantiate({"hidden": 16})
    a, b, c = (encoder.fit(graph, Budget(epochs=5), "cpu", seed).features for seed in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_dgi_restores_the_parameters_that_produced_the_best_loss():
    # With one epoch the only loss is the initial model's, so the checkpoint must be the initial
    # parameters (the reference saves before its optimiser step), i.e. the untrained embeddings.
    rng = np.random.default_rng(4)
    graph = NodeGraph(name="toy", features=rng.random((40, 10)).astype(np.float32),
                      adjacency=random_graph(40, 80, rng), labels=np.zeros(40, dtype=np.int64), splits={})
    trained = registry.get("encoder", "dgi").instantiate({"hidden": 16, "lr": 0.05})
    untrained = registry.get("encoder", "dgi").instantiate({"hidden": 16, "random_init": True})
    one_epoch = trained.fit(graph, Budget(epochs=1), "cpu", seed=2)
    assert one_epoch.diagnostics["best_epoch"] == 1
    np.testing.assert_array_equal(one_epoch.features, untrained.fit(graph, Budget(epochs=1), "cpu", seed=2).features)
    assert not np.allclose(one_epoch.features, trained.fit(graph, Budget(epochs=3), "cpu", seed=2).features)


def test_infograph_learns_on_mutag_within_a_tiny_budget():
    mutag = registry.get("dataset", "mutag").instantiate()
    encoder = registry.get("encoder", "infograph").instantiate({"hidden": 16, "layers": 3})
    emb = encoder.fit(mutag, Budget(epochs=4, batch_size=64), "cpu", seed=0)
    objective = [v for _, v in emb.trajectory]
    assert emb.features.shape == (188, 48) and len(objective) == 4
    assert objective[-1] > objective[0] + 1.0


def test_infograph_prior_term_trains():
    data = small_graph_set(np.random.default_rng(4))
    encoder = registry.get("encoder", "infograph").instantiate({"hidden": 8, "layers": 2, "prior": True})
    emb = encoder.fit(data, Budget(epochs=2, batch_size=8), "cpu", seed=0)
    assert np.all(np.isfinite(emb.features)) and len(emb.trajectory) == 2


@pytest.mark.parametrize("name", GRAPH_ENCODERS)
def test_random_init_baseline_is_the_untrained_architecture(name):
    spec = registry.get("encoder", name)
    assert spec.params().random_init is False
    if name == "dgi":
        rng = np.random.default_rng(5)
        data = NodeGraph(name="toy", features=rng.random((30, 8)).astype(np.float32),
                         adjacency=random_graph(30, 50, rng), labels=np.zeros(30, dtype=np.int64), splits={})
        params = {"hidden": 16, "random_init": True}
    else:
        data = small_graph_set(np.random.default_rng(5))
        data.splits = {"train": np.arange(6), "test": np.arange(6, 24)}
        params = {"hidden": 8, "layers": 2, "random_init": True}
    encoder = spec.instantiate(params)
    first = encoder.fit(data, Budget(epochs=3, batch_size=8), "cpu", seed=1)
    again = encoder.fit(data, Budget(epochs=3, batch_size=8), "cpu", seed=1)
    assert first.trajectory == [] and first.diagnostics["epochs_run"] == 0
    np.testing.assert_array_equal(first.features, again.features)
    assert first.features.shape[0] == (30 if name == "dgi" else 24)


def test_infograph_star_never_reads_test_labels():
    data = small_graph_set(np.random.default_rng(6))
    data.splits = {"train": np.arange(8), "test": np.arange(8, 24)}
    encoder = registry.get("encoder", "infograph_semi").instantiate({"hidden": 8, "layers": 2})
    first = encoder.fit(data, Budget(epochs=2, batch_size=8), "cpu", seed=0).features
    data.labels = data.labels.copy()
    data.labels[8:] = 1 - data.labels[8:]
    second = encoder.fit(data, Budget(epochs=2, batch_size=8), "cpu", seed=0).features
    np.testing.assert_array_equal(first, second)


def test_infograph_star_needs_a_labelled_split():
    data = small_graph_set(np.random.default_rng(7))
    with pytest.raises(UserError, match="labelled subset"):
        registry.get("encoder", "infograph_semi").instantiate().fit(data, Budget(epochs=1), "cpu", 0)


def test_infograph_star_and_supervised_only_fit_the_labelled_graphs():
    data = small_graph_set(np.random.default_rng(8), count=40)
    data.splits = {"train": np.arange(0, 40, 2).tolist() + [1, 3, 5, 7], "test": np.arange(9, 40, 2)}
    data.splits = {k: np.asarray(sorted(v)) for k, v in data.splits.items()}
    for name in ("infograph_semi", "supervised_gin"):
        emb = registry.get("encoder", name).instantiate({"hidden": 16, "layers": 2}).fit(
            data, Budget(epochs=30, batch_size=16), "cpu", 0
        )
        assert emb.diagnostics["final_supervised_loss"] < 0.3


def checkpoint_data(name: str):
    rng = np.random.default_rng(11)
    if name == "dgi":
        return NodeGraph(name="toy", features=rng.random((40, 10)).astype(np.float32),
                         adjacency=random_graph(40, 80, rng), labels=np.zeros(40, dtype=np.int64), splits={})
    data = small_graph_set(rng, count=24)
    data.splits = {"train": np.arange(0, 24, 2), "test": np.arange(1, 24, 2)}
    return data


@pytest.mark.parametrize("name", GRAPH_ENCODERS)
def test_checkpoints_are_kept_every_few_epochs_without_changing_the_training(name):
    data = checkpoint_data(name)
    encoder = registry.get("encoder", name)
    params = {"hidden": 8} | ({} if name == "dgi" else {"layers": 2})
    with_checkpoints = encoder.instantiate(params | {"checkpoint_every": 2}).fit(data, Budget(epochs=5, batch_size=8),
                                                                                "cpu", 0)
    without = encoder.instantiate(params | {"checkpoint_every": 0}).fit(data, Budget(epochs=5, batch_size=8), "cpu", 0)
    assert sorted(with_checkpoints.checkpoints) == [2, 4] and without.checkpoints == {}
    np.testing.assert_array_equal(with_checkpoints.features, without.features)
    assert all(f.shape == without.features.shape for f in with_checkpoints.checkpoints.values())
    assert not np.array_equal(with_checkpoints.checkpoints[2], with_checkpoints.checkpoints[4])


def test_encoders_refuse_the_wrong_dataset_kind(cora):
    with pytest.raises(UserError, match="items 'graphs'"):
        registry.get("encoder", "infograph").instantiate().fit(cora, Budget(epochs=1), "cpu", 0)
    with pytest.raises(UserError, match="items 'graph'"):
        registry.get("encoder", "dgi").instantiate().fit(small_graph_set(np.random.default_rng(0)),
                                                         Budget(epochs=1), "cpu", 0)


def test_published_numbers_name_registered_datasets():
    datasets = registry.specs("dataset")
    for name in GRAPH_ENCODERS:
        for key, (mean, std) in registry.get("encoder", name).published.items():
            assert key in datasets and 0 < mean <= 100 and std >= 0
