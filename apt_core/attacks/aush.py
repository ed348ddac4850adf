"""AUSH: Attacking recommender systems with augmented user profiles (Lin, Chen, Li, Xiao, Li,
Yang, CIKM 2020).

Threat model: the attacker knows the rating data; the victim model is not used at all (less
than the white-box knowledge of PGA and TNA, beside which the APT paper's Table 2 runs it).  Budget: ``n_fake_users`` fake users; every target rated
with the scale maximum; at most ``n_filler`` other items per fake user, of which
``n_selected`` are "selected" items and the rest fillers.

Algorithm (a GAN whose generator augments real "template" profiles):

* Selected items: the ``n_selected`` non-target items most co-rated with the targets (users
  who rated a target and the item; ties by popularity) -- items whose fans the attacker wants
  to reach.
* Templates: a fake user starts from a real user's profile; its fillers are
  ``n_filler - n_selected`` items drawn from the template's own rated items (fewer when the
  template has fewer), so filler popularity matches real behaviour.
* Generator: an MLP over the item vector (the template's filler ratings, normalised; 0 =
  unrated) that outputs a rating for every item in the rating range.  Discriminator: an MLP
  scoring a full profile vector as real or fake.
* Generator loss = ``adversarial_weight`` x GAN loss (fool the discriminator, which sees real
  users' whole profiles against fake profiles = generated filler + selected ratings + targets
  at max) + ``reconstruction_weight`` x MSE of the template's filler ratings +
  ``shilling_weight`` x mean (1 - selected rating)^2 (push selected items to the maximum).
  Discriminator loss: binary cross-entropy real vs fake (target columns hidden from it).
  The GAN term is weighted 0.1 by default: at weight 1 on ML-100K the discriminator won
  within a few dozen epochs and its gradient wrecked the reconstruction (filler ratings
  collapsed onto 1 and 5); at 0.1 the reconstruction error still falls and the rating
  histogram of the fakes resembles the real one.  Trained with Adam on minibatches
  of real templates (one discriminator and one generator step per epoch).
* Output: each fake user's filler and selected ratings from the generator, denormalised and
  rounded to the grid; targets at the maximum.

Because the fillers are a real user's items and their ratings reconstruct that user's,
AUSH's profiles are much closer to real ones than Random's by the statistics of
:mod:`apt_core.evaluation.stealth` -- the point of the attack.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from apt_core.attacks._common import assemble
from apt_core.attacks.base import Attack, AttackResult, Param, ProgressFn
from apt_core.data.dataset import Interactions
from apt_core.errors import CancelledError


def selected_items(train: Interactions, targets: np.ndarray, n_selected: int) -> np.ndarray:
    """The ``n_selected`` non-target items most co-rated with the targets (ties: popularity, id)."""
    if n_selected <= 0:
        return np.zeros(0, dtype=np.int64)
    raters = np.unique(train.users[np.isin(train.items, targets)])
    co = np.bincount(train.items[np.isin(train.users, raters)], minlength=train.n_items).astype(np.float64)
    co[targets] = -1
    pop = train.real_item_counts.astype(np.float64)
    order = np.lexsort((np.arange(train.n_items), -pop, -co))
    order = order[~np.isin(order, targets)]
    return np.sort(order[:n_selected]).astype(np.int64)


class _Adam:
    """Plain Adam (Kingma & Ba).  ``torch.optim`` is not used because importing it pulls in
    torch's compiler stack, which costs seconds on the first call -- more than the training."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        with torch.no_grad():
            for p, g, m, v in zip(self.params, grads, self.m, self.v):
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.addcdiv_(m / c1, (v / c2).sqrt_().add_(self.eps), value=-self.lr)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, n_out))


class AUSHAttack(Attack):
    name = "aush"
    summary = "GAN-generated profiles augmenting real templates, selected items at max (Lin et al. 2020)"
    paper = "Lin, Chen, Li, Xiao, Li, Yang, CIKM 2020"
    threat_model = "the rating data (the victim model is not used)"
    params = (
        Param("epochs", int, 100, "GAN training epochs", low=1, high=1000),
        Param("hidden", int, 128, "hidden units of the generator and discriminator MLPs", low=1, high=4096),
        Param("batch_size", int, 128, "real templates per minibatch", low=1, high=10_000),
        Param("lr", float, 1e-3, "Adam learning rate", low=0.0, low_open=True, high=10.0),
        Param("n_selected", int, 5, "selected items (most co-rated with the targets), pushed to the maximum", low=0, high=1000),
        Param("reconstruction_weight", float, 1.0, "weight of the template-reconstruction loss", low=0.0, high=1000.0),
        Param("shilling_weight", float, 1.0, "weight of the selected-items-at-max loss", low=0.0, high=1000.0),
        Param("adversarial_weight", float, 0.1, "weight of the GAN loss (1 made the discriminator win on ML-100K)", low=0.0, high=1000.0),
    )

    def __init__(self, epochs: int = 100, hidden: int = 128, batch_size: int = 128, lr: float = 1e-3,
                 n_selected: int = 5, reconstruction_weight: float = 1.0, shilling_weight: float = 1.0,
                 adversarial_weight: float = 0.1) -> None:
        # A run's loss history is in its result (diagnostics["loss_history"]): nothing of one
        # run is kept on the object, which the dashboard's grid thread may share with a page.
        self._set_declared(locals())

    def _generate(self, train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int,
                  rng: np.random.Generator, device: torch.device, progress: ProgressFn | None) -> AttackResult:
        n_users, n_items = train.n_real_users, train.n_items
        scale = train.scale
        low = scale.minimum / scale.maximum
        sel = selected_items(train, targets, min(self.n_selected, n_filler))
        n_fill = n_filler - len(sel)
        R = np.zeros((n_users, n_items), dtype=np.float32)
        R[train.users, train.items] = train.normalised_ratings
        allowed = np.ones(n_items, dtype=bool)  # items a template may contribute as fillers
        allowed[targets] = False
        allowed[sel] = False
        templates_pool = np.flatnonzero((R[:, allowed] > 0).any(1)) if n_fill > 0 else np.arange(n_users)
        if len(templates_pool) == 0:
            templates_pool = np.arange(n_users)

        def filler_masks(users: np.ndarray) -> np.ndarray:
            """A random choice of up to n_fill of each template's own (allowed) rated items."""
            mask = np.zeros((len(users), n_items), dtype=bool)
            if n_fill <= 0:
                return mask
            rated = (R[users] > 0) & allowed
            keys = np.where(rated, rng.random(rated.shape), np.inf)
            k = min(n_fill, n_items)
            idx = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < n_items else np.tile(np.arange(n_items), (len(users), 1))
            np.put_along_axis(mask, idx, True, axis=1)
            return mask & rated

        R_t = torch.from_numpy(R).to(device)
        sel_t = torch.from_numpy(sel).to(device)
        sel_mask = torch.zeros(n_items, device=device)
        sel_mask[sel_t] = 1.0
        tgt_mask = torch.zeros(n_items, device=device)
        tgt_mask[torch.from_numpy(targets).to(device)] = 1.0
        not_tgt = 1.0 - tgt_mask
        G = _mlp(n_items, self.hidden, n_items).to(device)
        D = _mlp(n_items, self.hidden, 1).to(device)
        g_params, d_params = list(G.parameters()), list(D.parameters())
        opt_g, opt_d = _Adam(g_params, self.lr), _Adam(d_params, self.lr)
        bce = nn.BCEWithLogitsLoss()

        def fake_vectors(users: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            m = torch.from_numpy(filler_masks(users)).to(device).float()
            x = R_t.index_select(0, torch.from_numpy(users).to(device)) * m
            out = low + (1.0 - low) * torch.sigmoid(G(x))
            keep = (m + sel_mask).clamp(max=1.0) * (1.0 - tgt_mask)
            profile = out * keep + tgt_mask
            return profile, out, m

        history: list[dict] = []
        batch = min(self.batch_size, n_users)
        for epoch in range(self.epochs):
            # Discriminator step: real users' whole profiles against generated ones.
            real_users = rng.choice(n_users, batch, replace=False)
            fake_users = rng.choice(templates_pool, batch, replace=len(templates_pool) < batch)
            with torch.no_grad():
                fake_profile, _, _ = fake_vectors(fake_users)
            real_profile = R_t.index_select(0, torch.from_numpy(real_users).to(device))
            ones = torch.ones(batch, 1, device=device)
            zeros = torch.zeros(batch, 1, device=device)
            # The discriminator never sees the target columns: the targets at the maximum are
            # the attack's payload, fixed by the budget, and a discriminator that keys on them
            # would teach the generator nothing about realistic fillers.
            d_loss = bce(D(real_profile * not_tgt), ones) + bce(D(fake_profile * not_tgt), zeros)
            opt_d.step(list(torch.autograd.grad(d_loss, d_params)))
            # Generator step: fool D, reconstruct the template's fillers, push selected items up.
            fake_profile, out, m = fake_vectors(fake_users)
            adv = bce(D(fake_profile * not_tgt), ones)
            x = R_t.index_select(0, torch.from_numpy(fake_users).to(device)) * m
            rec = ((out - x).pow(2) * m).sum() / m.sum().clamp_min(1.0)
            shill = (1.0 - out.index_select(1, sel_t)).pow(2).mean() if len(sel) else out.sum() * 0.0
            g_loss = self.adversarial_weight * adv + self.reconstruction_weight * rec + self.shilling_weight * shill
            opt_g.step(list(torch.autograd.grad(g_loss, g_params)))
            history.append({k: float(v.detach()) for k, v in (("d_loss", d_loss), ("adversarial", adv), ("reconstruction", rec), ("shilling", shill))})
            if progress is not None and progress((epoch + 1) / self.epochs, f"AUSH epoch {epoch + 1}/{self.epochs}") is False:
                raise CancelledError("AUSH attack cancelled")

        templates = rng.choice(templates_pool, n_fake_users, replace=len(templates_pool) < n_fake_users)
        with torch.no_grad():
            m = torch.from_numpy(filler_masks(templates)).to(device).float()
            x = R_t.index_select(0, torch.from_numpy(templates).to(device)) * m
            out = (low + (1.0 - low) * torch.sigmoid(G(x))).cpu().numpy()
        m = m.cpu().numpy().astype(bool)
        m[:, sel] = True
        width = int(m.sum(1).max(initial=0))
        # Pack each row's chosen items left; pad with -1 and drop the padding in assemble.
        order = np.argsort(~m, axis=1, kind="stable")[:, :width]
        valid = np.take_along_axis(m, order, axis=1)
        items = np.where(valid, order, 0)
        ratings = np.take_along_axis(out, items, axis=1) * scale.maximum
        profiles = assemble(items, ratings, targets, scale, n_items, valid=valid)
        return AttackResult(profiles, {"attack": self.name, "loss_history": history, "selected_items": sel.tolist()})
