"""Everything indexed by member, in one object: `PopulationState`.

    pop        the (K, P) parameters and gradients (and batch-norm buffers): `Population`
    table      `MemberTable`, one (K,) column per per-member hyperparameter
    lr         (K,) the learning rate the next update applies (the schedule writes it)
    slots      the optimizer's (K, P) buffers and its step count
    members    generators, stoppers, plateau, history (engine/train/members.py)
    sums       `EpochSums`, this epoch's training sums; perms (K, N) this epoch's data order

`compact(keep)` drops members from all of them at once; `state_dict(k)` / `restore(states)`
save and reload a member exactly. Values derived from the columns (the optimizer's (K, 1)
views, the steps' buffers) are cached by `derived` and made again after either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import torch

from fcnet_cli.config import Experiment
from fcnet_cli.engine.train.losses import MemberLoss
from fcnet_cli.engine.train.members import Member, new_member
from fcnet_cli.engine.train.population import Population

__all__ = ["EpochSums", "MemberTable", "PopulationState", "Switches"]

Tensor = torch.Tensor
T = TypeVar("T")


def column(of: Callable[[Experiment], float]) -> Any:
    """A (K,) float32 column of `MemberTable`, member k's value read by `of(exps[k])`."""
    return field(metadata={"of": of})


def _penalty(e: Experiment, kind: str) -> float:
    """λ of the L1 or L2 term (elastic net splits the strength by l1_ratio)."""
    r = e.regularization
    share = {("l1", "l1"): 1.0, ("l2", "l2"): 1.0, ("elastic_net", "l1"): r.l1_ratio,
             ("elastic_net", "l2"): 1 - r.l1_ratio}.get((r.type, kind), 0.0)
    return r.strength * share if share else 0.0


@dataclass(frozen=True)
class MemberTable:
    """Per-member hyperparameters, one (K,) float32 column each, read field by field.

    Adding a knob is one line here (its name and where the experiment holds it) and one
    where it is used."""

    momentum: Tensor = column(lambda e: e.optimizer.momentum)
    dampening: Tensor = column(lambda e: e.optimizer.dampening)
    nesterov: Tensor = column(lambda e: float(e.optimizer.nesterov))
    weight_decay: Tensor = column(lambda e: e.optimizer.weight_decay)
    beta1: Tensor = column(lambda e: e.optimizer.betas[0])
    beta2: Tensor = column(lambda e: e.optimizer.betas[1])
    eps: Tensor = column(lambda e: e.optimizer.eps)
    alpha: Tensor = column(lambda e: e.optimizer.alpha)
    l1: Tensor = column(lambda e: _penalty(e, "l1"))
    l2: Tensor = column(lambda e: _penalty(e, "l2"))
    dropout: Tensor = column(lambda e: e.model.dropout)
    label_smoothing: Tensor = column(lambda e: e.loss.label_smoothing)
    huber_delta: Tensor = column(lambda e: e.loss.huber_delta)
    grad_clip: Tensor = column(lambda e: e.training.grad_clip or float("inf"))

    @classmethod
    def of(cls, exps: Sequence[Experiment], device: torch.device) -> MemberTable:
        def col(of: Callable[[Experiment], float]) -> Tensor:
            return torch.tensor([float(of(e)) for e in exps], dtype=torch.float32,
                                device=device)

        return cls(**{f.name: col(f.metadata["of"]) for f in fields(cls)})

    def take(self, keep: Tensor) -> MemberTable:
        return replace(self, **{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def on(self, name: str) -> bool:
        """Whether any member's column `name` is positive (one host read)."""
        return bool((getattr(self, name) > 0).any())


@dataclass
class EpochSums:
    """This epoch's training sums per member: Σ loss·batch (K,), Σ correct (K,), examples."""

    loss: Tensor
    correct: Tensor
    count: int = 0

    @classmethod
    def zeros(cls, K: int, device: torch.device) -> EpochSums:
        z = torch.zeros(K, device=device)
        return cls(z, z.clone(), 0)

    @torch.no_grad()
    def add(self, logits: Tensor, loss: Tensor, yb: Tensor, *, regression: bool) -> None:
        """One batch: logits (K, B, C), loss (K,), targets yb (K, B[, T])."""
        if not regression:
            self.correct = self.correct + (logits.argmax(-1) == yb).sum(1)
        self.loss = self.loss + loss * yb.shape[1]
        self.count += yb.shape[1]

    def means(self) -> tuple[list[float], list[float]]:
        """(mean training loss, training accuracy) per member."""
        return (self.loss / self.count).tolist(), (self.correct / self.count).tolist()


@dataclass(frozen=True)
class Switches:
    """What the steps must do, read once from the table (one host read each)."""

    dropout: list[float] | None  # per member, floats for bernoulli_; None when nobody drops
    smoothing: Tensor | None  # (K,) label smoothing; None when nobody smooths
    penalty: tuple[bool, bool]  # (any L1, any L2)

    @classmethod
    def of(cls, state: PopulationState) -> Switches:
        t = state.table
        return cls(t.dropout.tolist() if t.on("dropout") else None,
                   t.label_smoothing if t.on("label_smoothing") else None,
                   (t.on("l1"), t.on("l2")))


class PopulationState:
    """The members of one population and everything indexed by them (see the module doc)."""

    def __init__(self, exps: Sequence[Experiment], in_features: int, n_classes: int,
                 device: torch.device, *, autograd: bool,
                 class_weights: Tensor | None = None):
        self.device = device
        self.pop = Population(exps, in_features, n_classes, device, autograd=autograd)
        self.table = MemberTable.of(exps, device)
        self.members: list[Member] = [new_member(i, e, device) for i, e in enumerate(exps)]
        self.optimizer = exps[0].optimizer.name
        self.loss_kind = exps[0].loss_name
        self.class_weights = class_weights  # (K, C) or None
        # label smoothing in the loss: decided once, for the population as first built
        self._smoothing = self.table.on("label_smoothing")
        self.lr = torch.tensor([e.optimizer.lr for e in exps], dtype=torch.float32,
                               device=device)
        self.slots: dict[str, Tensor] = {}  # optimizer buffers, (K, P) like pop.flat
        self.step_count = 0  # optimizer steps taken (shared by all members)
        self.sums = EpochSums.zeros(len(exps), device)
        self.perms: Tensor | None = None  # (K, N) this epoch's data order
        self._derived: dict[str, Any] = {}
        self.loss = self._member_loss()

    @property
    def K(self) -> int:
        return self.pop.K

    def derived(self, key: str, build: Callable[[PopulationState], T]) -> T:
        """`build(self)`, cached until the members change (compact, restore)."""
        if key not in self._derived:
            self._derived[key] = build(self)
        return self._derived[key]  # type: ignore[no-any-return]

    @property
    def switches(self) -> Switches:
        return self.derived("switches", Switches.of)

    def _member_loss(self) -> MemberLoss:
        return MemberLoss(self.loss_kind,
                          self.table.label_smoothing if self._smoothing else None,
                          self.class_weights, self.table.huber_delta)

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Every member's learning rate for the next updates (copied into `lr`)."""
        if len(lrs) == 1:
            self.lr.fill_(lrs[0])
        else:
            self.lr.copy_(torch.tensor(lrs, dtype=self.lr.dtype))

    def new_epoch(self, perms: Tensor) -> None:
        """Start an epoch: its data order (K, N) and zero sums."""
        self.perms = perms
        self.sums = EpochSums.zeros(self.K, self.device)

    # ------------------------------------------------------------------ members change

    def compact(self, keep: list[int]) -> Tensor:
        """Keep the members `keep` (positions), in every per-member structure; the kept ones
        keep their gradients. Returns `keep` as an index tensor."""
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.members = [self.members[k] for k in keep]
        self.pop.take(idx)
        self.table = self.table.take(idx)
        self.class_weights = None if self.class_weights is None else self.class_weights[idx]
        self.lr = self.lr[idx]
        self.slots = {n: t[idx] for n, t in self.slots.items()}
        self.perms = None if self.perms is None else self.perms[idx]
        self.sums = EpochSums(self.sums.loss[idx], self.sums.correct[idx], self.sums.count)
        self.loss = self._member_loss()
        self._derived.clear()
        return idx

    def weights(self, k: int) -> dict[str, Tensor]:
        """Member k as a plain `nn.Sequential` state dict (CPU tensors)."""
        return self.pop.state_dict(k)

    def state_dict(self, k: int, epoch: int, batch: int, *, mid_epoch: bool) -> dict[str, Any]:
        """Everything beyond member k's weights that exact resume needs (train_state.pt)."""
        perm = self.perms[k] if mid_epoch and self.perms is not None else None
        return self.members[k].train_state(epoch, batch, self._member_slots(k), perm,
                                           self.sums.loss[k], self.sums.correct[k],
                                           self.sums.count)

    def restore(self, weights: Sequence[dict[str, Tensor]], train: Sequence[dict[str, Any]],
                best: Sequence[dict[str, Tensor] | None]) -> tuple[int, int]:
        """Reload every member from its saved state; returns (epoch, batch) to continue at."""
        self.pop.load_state_dicts(weights)
        self._load_slots([t["optimizer"] for t in train])
        for m, t, b in zip(self.members, train, best, strict=True):
            m.load_state(t, b)
        first = train[0]
        if first["perm"] is not None:  # stopped inside an epoch: its data order and sums
            self.perms = torch.stack([t["perm"] for t in train]).to(self.device)
            self.sums = EpochSums(torch.stack([t["loss_sum"] for t in train]).to(self.device),
                                  torch.stack([t["correct"] for t in train]).to(self.device),
                                  int(first["count"]))
        self._derived.clear()
        return int(first["epoch"]), int(first["batch"])

    # ------------------------------------------------------------------ optimizer slots

    def _member_slots(self, k: int) -> dict[str, Any]:
        """The optimizer state of member k alone, one dict per parameter."""
        per = {n: self.pop.views(t) for n, t in self.slots.items()}
        return {"step": self.step_count, "layout": "out_in",
                "buffers": [{n: v[i][k].clone() for n, v in per.items()}
                            for i in range(len(self.pop.shapes))]}

    def _load_slots(self, states: list[dict[str, Any]]) -> None:
        """The optimizer state from per-member states (all members at the same step)."""
        self.step_count = int(states[0]["step"])
        self.slots = {}
        weights = self.pop.weight_positions()

        def buffer(s: dict[str, Any], i: int, n: str) -> Tensor:
            b = s["buffers"][i][n]
            # states written before weights took nn.Linear's (out, in) layout hold (in, out)
            return b.t() if i in weights and s.get("layout") != "out_in" else b

        for n in states[0]["buffers"][0] if states[0]["buffers"] else ():
            flat = torch.zeros_like(self.pop.flat)
            for i, v in enumerate(self.pop.views(flat)):
                v.copy_(torch.stack([buffer(s, i, n) for s in states]))
            self.slots[n] = flat
