"""One training run in memory: model, EMA, optimizer, data stream, and the state that gets saved."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from diffusegae.checkpoint import load_checkpoint, read_info
from diffusegae.config import ModelConfig
from diffusegae.data import AttributeDataset
from diffusegae.models import DiffusionAutoencoder, build_model
from diffusegae.train.batches import Batches
from diffusegae.train.ema import EMA
from diffusegae.train.objectives import OBJECTIVE_FIELDS, LearnedLossNorm, Objective
from diffusegae.train.stages import (
    StageSpec,
    attribute_chunks,
    latent_stats,
    stage_losses,
    step_generator,
    to_device,
)
from diffusegae.train.state import (
    TrainState,
    append_log,
    device_name,
    export_checkpoint,
    load_state_tensors,
    restore_optimizer,
    save_train_state,
)

TRAIN_ONLY = "train_only."  # prefix of tensors kept in the train state but never in the checkpoint


class StopFlag:
    """Set by a signal handler; the loop checks it between steps."""

    requested = False
    reason = ""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that shapes the optimisation of a stage, resolved from arguments, the last run, defaults."""

    stage: int
    batch_size: int
    lr: float
    lambda_ss: float
    lambda_ur: float
    gamma: float
    seed: int
    dataset_seed: int
    ema_decay: float
    grad_clip: float
    amp: bool
    stats_images: int
    lambda_sc: float = 0.0
    # the diffusion term's weighting and timesteps (stages 1 and 3)
    objective: Objective = dataclasses.field(default_factory=Objective)

    @classmethod
    def resolve(
        cls,
        spec: StageSpec,
        given: dict[str, Any],
        previous: dict[str, Any],
        amp: bool,
        prediction: str = "eps",
    ) -> Settings:
        """Each value: as given, else as in the run being resumed (`previous`), else the stage default.

        The objective's fields resolve the same way, one by one; "auto" weighting becomes the MSE of the
        model's own `prediction`, so the log says what was trained."""
        defaults = {
            "batch_size": spec.batch_size,
            "lr": spec.lr,
            "lambda_ss": spec.lambda_ss,
            "lambda_ur": spec.lambda_ur,
            "lambda_sc": spec.lambda_sc,
            "gamma": spec.gamma,
            "seed": 0,
            "dataset_seed": 0,
            "ema_decay": 0.999,
            "grad_clip": 1.0,
            "stats_images": 4096,
        }
        old_split = previous.get("dataset_seed")
        if old_split is not None and given.get("dataset_seed") not in (None, old_split):
            raise ValueError(f"this stage was trained with dataset_seed {old_split}; the split cannot change")
        values = {k: previous.get(k, d) if given.get(k) is None else given[k] for k, d in defaults.items()}
        old_objective = previous.get("objective") or {}
        objective = Objective(
            **{
                k: old_objective.get(k, getattr(Objective(), k)) if given.get(k) is None else given[k]
                for k in OBJECTIVE_FIELDS
            }
        ).resolved(prediction)
        return cls(stage=spec.number, amp=amp, objective=objective, **values)


class Session:
    """The live objects of one run: model, EMA, optimizer, data stream, and the state that gets saved."""

    def __init__(
        self,
        directory: Path,
        cfg: ModelConfig,
        spec: StageSpec,
        settings: Settings,
        state: TrainState,
        record: dict[str, Any] | None,
        device: torch.device,
        quiet: bool,
        data_workers: int = 0,
    ) -> None:
        self.directory, self.cfg, self.spec, self.settings = directory, cfg, spec, settings
        self.state, self.device, self.quiet = state, device, quiet
        self.model = self._load_model(record)
        self.dataset = AttributeDataset(cfg.image_size, seed=settings.dataset_seed)
        self.chunks = attribute_chunks(cfg.gae, self.dataset) if spec.groups else []
        if record is None and spec.groups and (spec.gae_only or self._stats_unset()):
            self._set_latent_stats()  # GAE-only stages start from fresh statistics; stage 3 needs some
        self.ema = EMA(self.model, settings.ema_decay, updates=state.ema_updates)
        if record is not None:
            self.ema.model.load_state_dict(load_state_tensors(directory, record, "ema"), strict=True)
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.loss_norm = self._make_loss_norm(record)
        if self.loss_norm is not None:
            named += [(f"{TRAIN_ONLY}{n}", p) for n, p in self.loss_norm.named_parameters()]
        self.param_names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.optimizer = self._make_optimizer(record)
        self.batches = Batches(
            self.dataset, spec, settings.seed, state.segment_start, settings.batch_size, data_workers
        )
        self.device_name = device_name(device)

    def _load_model(self, record: dict[str, Any] | None) -> DiffusionAutoencoder:
        if record is not None:  # resume: the raw weights of the last save
            model = build_model(self.cfg)
            raw = load_state_tensors(self.directory, record, "raw")
            self._train_only = {k: v for k, v in raw.items() if k.startswith(TRAIN_ONLY)}
            model.load_state_dict({k: v for k, v in raw.items() if k not in self._train_only}, strict=True)
        else:  # a new stage starts from the EMA weights of the last one
            model = load_checkpoint(self.directory)
        model = model.to(self.device).requires_grad_(False)
        for part in self.spec.parts:
            getattr(model, part).requires_grad_(True)
        return model

    def _make_loss_norm(self, record: dict[str, Any] | None) -> LearnedLossNorm | None:
        """EDM2's u(t) table when the objective asks for it (not in stages 2, 4: no diffusion term there)."""
        if not self.settings.objective.learned_norm or self.spec.gae_only:
            return None
        norm = LearnedLossNorm(self.cfg.diffusion.num_timesteps).to(self.device)
        saved = {k[len(TRAIN_ONLY) :]: v for k, v in getattr(self, "_train_only", {}).items()}
        if record is not None and saved:
            norm.load_state_dict(saved, strict=True)
        return norm

    def train_only_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors saved beside the raw weights that never reach the checkpoint (the u(t) table)."""
        if self.loss_norm is None:
            return {}
        return {f"{TRAIN_ONLY}{k}": v for k, v in self.loss_norm.state_dict().items()}

    def _make_optimizer(self, record: dict[str, Any] | None) -> torch.optim.Optimizer:
        """Adam (stages 2, 3) or AdamW (stage 1), no weight decay; on resume, with its saved moments."""
        opt_cls = torch.optim.AdamW if self.spec.optimizer == "adamw" else torch.optim.Adam
        optimizer = opt_cls(self.params, lr=self.settings.lr, weight_decay=0.0)
        if record is not None:
            if record["optimizer"]["params"] != self.param_names:
                raise ValueError(
                    f"{self.directory}: the saved optimizer state is for other parameters than "
                    f"stage {self.spec.number} trains"
                )
            moments = load_state_tensors(self.directory, record, "optimizer")
            restore_optimizer(optimizer, self.param_names, moments)
            for group in optimizer.param_groups:
                group["lr"] = self.settings.lr  # a resumed run may change the learning rate
        return optimizer

    def _stats_unset(self) -> bool:
        gae = self.model.gae
        return bool((gae.z_mean == 0).all() and (gae.z_std == 1).all())

    def _set_latent_stats(self) -> None:
        """Stages 2, 4: the GAE standardises z_sem with statistics of the frozen (EMA) encoder."""
        s = self.settings
        mean, std = latent_stats(self.model.encoder.eval(), self.dataset, s.stats_images, s.seed, self.device)
        self.model.gae.z_mean.copy_(mean)
        self.model.gae.z_std.copy_(std)
        self._print(
            f"stage {self.spec.number}: z_sem statistics from {s.stats_images} images: "
            f"|mean| {mean.abs().mean():.4f}, std {std.mean():.4f} (averaged over dimensions)"
        )

    def _train_mode(self) -> None:
        self.model.train()
        for name in ("encoder", "unet", "gae"):
            part = getattr(self.model, name)
            if part is not None and name not in self.spec.parts:
                part.eval()  # frozen parts run deterministically (no dropout)

    def step(self) -> tuple[dict[str, float], float]:
        """One optimizer step; returns the float losses and the seconds spent rendering data."""
        s, n = self.settings, self.state.step
        t0 = time.perf_counter()
        x0 = to_device(self.batches.images(n), self.device)
        data_s = time.perf_counter() - t0
        gen = step_generator(s.seed, s.stage, n)
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if s.amp else contextlib.nullcontext()
        with amp:
            losses = stage_losses(
                self.model,
                self.spec,
                x0,
                self.chunks,
                s.lambda_ss,
                s.lambda_ur,
                s.gamma,
                gen,
                s.objective,
                self.loss_norm,
                s.lambda_sc,
            )
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"stage {s.stage} step {n}: loss is {loss.item()}; last save kept")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, s.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        self.state.step += 1
        self.state.images += math.prod(x0.shape[:-3])
        self.state.ema_updates = self.ema.updates
        values = {k: float(v.detach()) for k, v in losses.items()}
        values["grad_norm"] = float(grad_norm)
        return values, data_s

    def run(
        self,
        steps: int,
        log_every: int,
        save_every: int | None,
        save_every_s: float | None,
        time_limit_s: float | None,
        t_start: float,
        stop: StopFlag,
    ) -> None:
        self._train_mode()
        window: dict[str, float] = {}
        win_steps, win_images, win_data, win_t = 0, self.state.images, 0.0, time.perf_counter()
        last_save = time.monotonic()
        for _ in range(steps):
            if stop.requested:
                self._print(f"stopping on {stop.reason}")
                break
            t0 = time.perf_counter()
            values, data_s = self.step()
            self.state.smooth({k: v for k, v in values.items() if k != "grad_norm"})
            for k, v in values.items():
                window[k] = window.get(k, 0.0) + v
            win_steps, win_data = win_steps + 1, win_data + data_s
            if log_every and self.state.step % log_every == 0:
                elapsed = time.perf_counter() - win_t
                self._log(
                    {k: v / win_steps for k, v in window.items()},
                    (self.state.images - win_images) / elapsed,
                    win_data / elapsed,
                )
                window, win_steps, win_data = {}, 0, 0.0
                win_images, win_t = self.state.images, time.perf_counter()
            now = time.monotonic()
            out_of_time = time_limit_s is not None and now - t_start >= time_limit_s
            if not out_of_time and (
                (save_every and self.state.step % save_every == 0)
                or (save_every_s is not None and now - last_save >= save_every_s)
            ):
                self.save()
                last_save = time.monotonic()
            self.state.wall_s += time.perf_counter() - t0  # wall time of the step, its log and save
            if out_of_time:
                self._print(f"time limit of {time_limit_s:g}s reached")
                break
        self.save()

    def close(self) -> None:
        """Stop the data workers (if any)."""
        self.batches.close()

    def _log(self, losses: dict[str, float], images_per_s: float, data_frac: float) -> None:
        s = self.state
        lr = self.optimizer.param_groups[0]["lr"]
        record = {
            "stage": s.stage,
            "step": s.step,
            "losses": {k: round(v, 6) for k, v in losses.items()},
            "lr": lr,
            "images_per_s": round(images_per_s, 2),
            "data_fraction": round(data_frac, 3),
            "wall_s": round(s.wall_s, 2),
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        append_log(self.directory, record)
        terms = " ".join(f"{k} {v:.4f}" for k, v in losses.items() if k not in ("loss", "grad_norm"))
        self._print(
            f"stage {s.stage} step {s.step:>7d}  loss {losses['loss']:.4f}  ({terms})  "
            f"lr {lr:.1e}  {images_per_s:.1f} img/s  {s.wall_s:.0f}s"
        )

    def _print(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)

    def summary(self) -> dict[str, Any]:
        s, st = self.settings, self.state
        out = {
            "steps": st.step,
            "images": st.images,
            "batch_size": s.batch_size,
            "images_per_step": s.batch_size * (len(self.chunks) + 1 if self.spec.groups else 1),
            "optimizer": self.spec.optimizer,
            "lr": s.lr,
            "weight_decay": 0.0,
            "trains": list(self.spec.parts),
            "ema_decay": s.ema_decay,
            "grad_clip": s.grad_clip,
            "losses": {k: round(v, 6) for k, v in st.smoothed.items()},
            "device": self.device_name,
            "device_type": self.device.type,
            "amp_bf16": s.amp,
            "threads": torch.get_num_threads(),
            "wall_s": round(st.wall_s, 1),
            "images_per_s": round(st.images / st.wall_s, 2) if st.wall_s > 0 else None,
            "seed": s.seed,
            "dataset_seed": s.dataset_seed,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if self.spec.groups:
            out.update(lambda_ss=s.lambda_ss, lambda_ur=s.lambda_ur, loss_norm="l1, standardised z_sem")
            if s.lambda_sc:
                out["lambda_sc"] = s.lambda_sc
        if not self.spec.gae_only:
            out["objective"] = s.objective.to_dict()
        if self.spec.number == 3:
            out["gamma"] = s.gamma
        if self.spec.gae_only:
            out["stats_images"] = s.stats_images
        return out

    def save(self) -> None:
        self.state.settings = dataclasses.asdict(self.settings)
        save_train_state(
            self.directory,
            self.state,
            self.model,
            self.ema.model,
            self.optimizer,
            self.param_names,
            self.train_only_tensors(),
        )
        info = read_info(self.directory)
        info.setdefault("train", {})[f"stage{self.spec.number}"] = self.summary()
        export_checkpoint(self.ema.model, self.directory, info)
