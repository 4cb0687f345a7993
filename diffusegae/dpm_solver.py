"""DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models"), multistep, data-prediction form, orders 1 and 2, on the discrete schedule: math only, beside
diffusion.py's DDIM, with the same conventions (the network is called with the original integer t; x0 is
clipped to [-1, 1] as in Diff-AE, and everything else follows from the clipped x0).

Symbols: α_t = sqrt(ᾱ_t), σ_t = sqrt(1 − ᾱ_t), λ_t = log(α_t / σ_t) (half the log-SNR), D = the data (x0)
prediction. One step from s to t with h = λ_t − λ_s (Alg. 2 of the paper, written without e^{−h} so that
the ends of the schedule, σ_t = 0 or α_t = 0, stay finite; the first line is DDIM's move):

    x_t = (σ_t / σ_s)·x_s + (α_t − σ_t·α_s/σ_s)·D,      α_t − σ_t·α_s/σ_s = −α_t·(e^{−h} − 1)
    order 1:  D = x0_s                                   (= DDIM: σ_t·ε(x0_s) + α_t·x0_s, exactly Eq. 12)
    order 2:  D = x0_s + (x0_s − x0_prev)/(2r),  r = h_prev / h, h_prev = λ_s − λ_prev

x0_prev is the prediction of the sample's previous step, made at λ_prev: the solver's history, one per
sample. Order 2 needs that history (not at a sample's first step), a finite h (not at a step onto the
clean image, ᾱ = 1, nor onto pure noise, ᾱ = 0: those steps are order 1, as diffusers' `lower_order_final`)
and a step ratio r ≥ MIN_STEP_RATIO (a deviation from Alg. 2, see there).

Inversion (x0 → x_T, the DiffuseGAE paper's stochastic encoder for DPM-Solver++) runs the same update
with the schedule walked upward (h < 0, h_prev < 0). What is exact: the update is the solver's own
discretisation of the probability-flow ODE in either direction, and order 1 is DDIM inversion (Diff-AE
Eq. 7) exactly. What is an approximation: like DDIM inversion, it uses the prediction at the step's start
(x_s) for a step whose end (x_t) is not known yet, so decoding an inverted x_T returns the image only up to
the solver's discretisation error, which shrinks with the step count.
"""

from __future__ import annotations

import numpy as np

from diffusegae.diffusion import Array, _coef, ddim_update, predict_x0

SAMPLERS = ("ddim", "dpmpp2m")
# Order 2 only where the step is at most twice the previous one in λ (r ≥ 1/2): Diff-AE's time-uniform
# timesteps stretch the last step onto t = 0 to ~4× its predecessor (r ≈ 0.23 at S = 20), where the
# extrapolation x0 + (x0 − x0_prev)/(2r) overshoots; measured on a Gaussian data model with its exact
# denoiser, S = 50: error 0.025 with it at order 2, 0.0017 at order 1 there (DDIM: 0.019).
MIN_STEP_RATIO = 0.5
ORDER = {"ddim": 1, "dpmpp2m": 2}  # DDIM is DPM-Solver++ of order 1
SAMPLER_HELP = (
    "ddim (the server's default) or dpmpp2m (DPM-Solver++(2M): about half the steps for DDIM's quality)"
)


def half_log_snr(alpha_bar: float | np.ndarray) -> np.ndarray:
    """λ = log(α/σ) = ½·log(ᾱ/(1 − ᾱ)) in float64 (+inf at ᾱ = 1, −inf at ᾱ = 0)."""
    a = np.asarray(alpha_bar, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 0.5 * (np.log(a) - np.log1p(-a))


def dpmpp_step(
    x: Array,
    eps: Array,
    alpha_bar: float | np.ndarray,
    alpha_bar_to: float | np.ndarray,
    x0_prev: Array | None = None,
    alpha_bar_prev: float | np.ndarray | None = None,
    second_order: bool | np.ndarray = False,
) -> tuple[Array, Array]:
    """One DPM-Solver++ step of x (at ᾱ, with the network's eps) to ᾱ_to → (x at ᾱ_to, the clipped x0).

    Order 2 on the rows where `second_order` is True, with x0_prev the prediction the row's previous step
    made at ᾱ_prev. Order 1 is diffusion.ddim_step's own arithmetic (ddim_update), so it is DDIM bit for
    bit; order 2 adds (α_t − σ_t·α_s/σ_s)·(x0 − x0_prev)/(2r). Per-row [B] coefficients are allowed.
    """
    x0 = predict_x0(x, eps, alpha_bar)
    out = ddim_update(x, x0, alpha_bar, alpha_bar_to)  # ddim_step's move, from the x0 computed once
    second = np.asarray(second_order, dtype=bool)
    if not second.any():
        return out, x0
    if x0_prev is None or alpha_bar_prev is None:
        raise ValueError("order 2 needs the previous step's x0 prediction and its ᾱ")
    ab = np.asarray(alpha_bar, dtype=np.float64)
    ab_to = np.asarray(alpha_bar_to, dtype=np.float64)
    lam_s = half_log_snr(ab)
    h, h_prev = half_log_snr(ab_to) - lam_s, lam_s - half_log_snr(alpha_bar_prev)
    data_coef = np.sqrt(ab_to) - np.sqrt(1 - ab_to) * np.sqrt(ab) / np.sqrt(1 - ab)  # α_t − σ_t·α_s/σ_s
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = h_prev / h  # r
        second = second & (ratio >= MIN_STEP_RATIO)
        weight = np.where(second, data_coef / (2.0 * ratio), 0.0)  # the coefficient on x0 − x0_prev
    if not np.isfinite(weight).all():
        raise ValueError("order 2 needs finite steps: not onto ᾱ = 0 or 1, nor at a sample's first step")
    return out + _coef(weight, x) * (x0 - x0_prev), x0
