"""InfoGraph* (Sun et al. 2020, sec. 3.3) for semi-supervised graph classification, and its baseline.

Two GIN encoders: the supervised one (with a classifier head) learns from the labelled graphs
only; the unsupervised one maximises InfoGraph's local-global JS objective on every graph (no
labels). The teacher-student term maximises the JS objective between the two encoders' graph
embeddings (each passed through its own MLP head): the same graph is the positive pair, other
graphs of the batch the negatives -- a square score matrix, so bounds.js_objective applies
directly. `unsupervised_weight = 0` is the supervised-only baseline trained on the same labels.

Labels come only from `dataset.splits["train"]`. What goes downstream is the supervised
encoder's pooled embedding (the same probe then serves every encoder); `readout = "logits"`
hands over the classifier head's logits instead.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness import Budget, Embeddings
from harness.errors import UserError
from plugins.encoders import checkpoint_due, js_pairs
from plugins.encoders.gin import GINEncoder, MLPWithShortcut, embed_all, local_global_scores, xavier_init
from plugins.encoders.graphs import InfoGraphSemiParams, SupervisedOnlyParams
from plugins.encoders.infograph import check_graphs
from plugins.encoders.message_passing import GraphBatch
from plugins.estimators import bounds


class InfoGraphSemiModel(nn.Module):
    def __init__(self, in_features: int, classes: int, p: InfoGraphSemiParams) -> None:
        super().__init__()
        self.supervised = GINEncoder(in_features, p.hidden, p.layers)
        dim = self.supervised.out_features
        self.classifier = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, classes))
        self.unsupervised = GINEncoder(in_features, p.hidden, p.layers)
        self.local_head, self.global_head = MLPWithShortcut(dim), MLPWithShortcut(dim)
        self.student_head, self.teacher_head = MLPWithShortcut(dim), MLPWithShortcut(dim)
        xavier_init(self)


class InfoGraphSemi:
    def __init__(self, params: InfoGraphSemiParams) -> None:
        self.params = params

    def fit(self, dataset, budget: Budget, device: str, seed: int) -> Embeddings:
        check_graphs(dataset, "InfoGraph*")
        labelled = np.asarray(dataset.splits.get("train", []), dtype=np.int64)
        if labelled.size == 0:
            raise UserError(
                "InfoGraph* needs a labelled subset in dataset.splits['train']; use a *_semi dataset "
                "(for example mutag_semi) rather than one evaluated by k-fold cross-validation."
            )
        p = self.params
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        start = time.perf_counter()
        graphs = dataset.graphs
        targets = torch.as_tensor(np.asarray(dataset.labels)[labelled], dtype=torch.int64).to(device)
        classes = int(targets.max()) + 1
        model = InfoGraphSemiModel(graphs[0][0].shape[1], classes, p).to(device)
        trajectory: list[tuple[int, float]] = []
        checkpoints: dict[int, np.ndarray] = {}
        diagnostics: dict = {"epochs_run": 0, "random_init": p.random_init, "labelled": int(labelled.size)}
        semi = p.unsupervised_weight > 0 or p.teacher_student_weight > 0
        if not p.random_init:
            optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
            position = {int(g): k for k, g in enumerate(labelled)}
            for epoch in range(1, budget.epochs + 1):
                model.train()
                sup_losses, objectives = [], []
                # An epoch is one pass over all graphs; every step pairs a labelled batch with a
                # batch of any graphs, so InfoGraph* and the supervised-only baseline take the
                # same number of supervised steps.
                order = rng.permutation(len(graphs))
                for step in range(-(-len(graphs) // budget.batch_size)):
                    chunk = rng.choice(labelled, size=min(budget.batch_size, labelled.size), replace=False)
                    y = targets[torch.as_tensor([position[int(g)] for g in chunk], device=device)]
                    graph_emb, _ = model.supervised(GraphBatch([graphs[i] for i in chunk], device))
                    loss = F.cross_entropy(model.classifier(graph_emb), y)
                    sup_losses.append(loss.item())
                    chunk_u = order[step * budget.batch_size:(step + 1) * budget.batch_size]
                    if semi and len(chunk_u) >= 2:
                        unsup_loss, objective = self._unsupervised(
                            model, GraphBatch([graphs[i] for i in chunk_u], device)
                        )
                        loss = loss + unsup_loss
                        objectives.append(objective)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                value = float(np.mean(objectives)) if objectives else -float(np.mean(sup_losses))
                trajectory.append((epoch, value))
                if checkpoint_due(p.checkpoint_every, epoch, budget.epochs):
                    checkpoints[epoch] = self._readout(model, graphs, budget, device)
            diagnostics.update({"epochs_run": budget.epochs, "final_supervised_loss": float(np.mean(sup_losses))})
        features = self._readout(model, graphs, budget, device)
        diagnostics["seconds"] = time.perf_counter() - start
        return Embeddings(features=features, trajectory=trajectory, diagnostics=diagnostics,
                          untrained_baseline=p.random_init, checkpoints=checkpoints)

    def _readout(self, model: InfoGraphSemiModel, graphs, budget: Budget, device: str) -> np.ndarray:
        """The supervised encoder's graph embeddings, or its classifier's logits on them (eval mode)."""
        features = embed_all(model.supervised, graphs, max(budget.batch_size, 256), device)
        if self.params.readout == "logits":
            model.eval()
            with torch.no_grad():
                features = model.classifier(torch.as_tensor(features).to(device)).cpu().numpy()
        return features

    def _unsupervised(self, model: InfoGraphSemiModel, batch) -> tuple[torch.Tensor, float]:
        p = self.params
        unsup_graph, unsup_nodes = model.unsupervised(batch)
        positive, negative = local_global_scores(
            model.local_head(unsup_nodes), model.global_head(unsup_graph), batch.graph_of
        )
        local_global = js_pairs.js_objective(positive[:, None], negative)
        sup_graph, _ = model.supervised(batch)
        # Teacher-student: graph i of the supervised encoder vs graph j of the unsupervised one.
        scores = model.student_head(sup_graph) @ model.teacher_head(unsup_graph).t()
        teacher_student = bounds.js_objective(scores).mean()
        loss = -p.unsupervised_weight * local_global - p.teacher_student_weight * teacher_student
        return loss, teacher_student.item()


def build_infograph_semi(params: InfoGraphSemiParams) -> InfoGraphSemi:
    return InfoGraphSemi(params)


def build_supervised_only(params: SupervisedOnlyParams) -> InfoGraphSemi:
    """The same supervised encoder and head, trained on the labelled graphs alone."""
    return InfoGraphSemi(InfoGraphSemiParams(
        hidden=params.hidden, layers=params.layers, lr=params.lr, unsupervised_weight=0.0,
        teacher_student_weight=0.0, readout=params.readout, random_init=params.random_init,
        checkpoint_every=params.checkpoint_every,
    ))
