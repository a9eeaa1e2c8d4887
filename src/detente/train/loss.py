"""The policy-gradient loss of SPEC section 3, shared by every trainer.

``L = (1/N) sum [ -C * rho * log pi + kappa * rho * k3 - eta * H ]`` over the
N decisions (or tokens) that count, with the truncated importance weight
``rho = min(exp(log pi_train - log pi_sampler), rho_max)`` (detached; 1 when
the sampler is the trained policy) and ``k3 = exp(d) - 1 - d``,
``d = log pi_ref - log pi``. The tabular trainer uses it with ``rho = 1`` and
``kappa = 0``.

Sources: Piche et al., arXiv 2511.19405 (2025) and its public code;
``k3`` is Schulman's low-variance KL estimator (http://joschu.net/blog/kl-approx.html).
"""

from __future__ import annotations

import torch
from torch import Tensor


def policy_loss(
    logp: Tensor,
    C: Tensor,
    H: Tensor,
    *,
    eta: float = 0.0,
    mask: Tensor | None = None,
    logp_sampler: Tensor | None = None,
    rho_max: float = 2.0,
    logp_ref: Tensor | None = None,
    kappa: float = 0.0,
) -> Tensor:
    """Scalar ``L = (1/N) sum [ -C * rho * logp + kappa * rho * k3 - eta * H ]``.

    Every tensor has one shape ``(*S)`` (e.g. ``(B, T)`` decisions or
    ``(B, N)`` tokens): ``logp`` log-probability of the taken action under the
    trained policy (carries the gradient), ``C`` its credit (detached here),
    ``H`` the policy's entropy at that decision, ``mask`` 1 where a decision
    counts. ``logp_sampler`` None means rho = 1; ``kappa > 0`` needs ``logp_ref``.
    """
    for name, x in (("C", C), ("H", H), ("mask", mask), ("logp_sampler", logp_sampler),
                    ("logp_ref", logp_ref)):
        if x is not None and x.shape != logp.shape:
            raise ValueError(f"{name} shape {tuple(x.shape)} differs from logp shape {tuple(logp.shape)}")
    rho = torch.ones_like(logp) if logp_sampler is None else truncated_ratio(logp, logp_sampler, rho_max)
    per_decision = -C.detach() * rho * logp - eta * H
    if kappa > 0:
        per_decision = per_decision + kappa * rho * k3(logp, _needed(logp_ref))
    if mask is None:
        return per_decision.mean()
    m = mask.to(per_decision.dtype)
    N = m.sum().clamp(min=1)  # decisions that count
    return (per_decision * m).sum() / N


def clipped_policy_loss(
    logp: Tensor,
    logp_old: Tensor,
    C: Tensor,
    H: Tensor,
    *,
    eps: float = 0.2,
    eta: float = 0.0,
    logp_ref: Tensor | None = None,
    kappa: float = 0.0,
) -> Tensor:
    """The proximal variant of :func:`policy_loss`:

    ``L = mean[ -min(ratio * C, clip(ratio, 1-eps, 1+eps) * C) + kappa * k3 - eta * H ]``.

    ``ratio = exp(logp - logp_old)`` carries the gradient (PPO, Schulman et al. 2017,
    arXiv 1707.06347); ``C`` is the same credit as :func:`policy_loss` takes.
    Several epochs over one batch stay close to the policy that sampled it.
    """
    C = C.detach()
    ratio = torch.exp(logp - logp_old)
    surrogate = torch.minimum(ratio * C, ratio.clamp(1 - eps, 1 + eps) * C)
    per_token = -surrogate - eta * H
    if kappa > 0:
        per_token = per_token + kappa * k3(logp, _needed(logp_ref))
    return per_token.mean()


def _needed(logp_ref: Tensor | None) -> Tensor:
    if logp_ref is None:
        raise ValueError("kappa > 0 needs logp_ref (log-probs under the reference policy)")
    return logp_ref


def truncated_ratio(logp: Tensor, logp_sampler: Tensor, rho_max: float) -> Tensor:
    """``rho = min(exp(logp - logp_sampler), rho_max)``, detached."""
    return torch.exp(logp.detach() - logp_sampler).clamp(max=rho_max)


def k3(logp: Tensor, logp_ref: Tensor) -> Tensor:
    """``k3 = exp(d) - 1 - d`` with ``d = logp_ref - logp``: a per-sample estimate of KL(pi || ref), >= 0."""
    d = logp_ref - logp
    return torch.exp(d) - 1 - d
