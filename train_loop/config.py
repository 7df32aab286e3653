"""The training configuration: one frozen dataclass the binary builds from its
flags once and passes down (the library never reads absl flags).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Keyword arguments of `layers.UNet` (besides the data-derived ones)."""
    filters: int = 32
    depth: int = 4
    residual: bool = True
    center: str = "conv"
    policy: str = "float32"
    encoder: str = "unet"  # or a pretrained one: layers.pretrained.ENCODERS


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Fine-tuning a pretrained encoder (`layers.pretrained`): `weights`, a
    folder of `tools.import_encoder` (None: random initialisation); the
    encoder is frozen (no update, batch-norm statistics fixed) for the first
    `freeze_steps` steps and then trains at `lr_multiplier` times the
    learning rate (an optimizer parameter group, `core.optim`).
    `weights_info` is the folder's encoder.json, recorded for the export's
    model_info.json."""
    weights: Optional[str] = None
    weights_info: Optional[dict] = None
    freeze_steps: int = 0
    lr_multiplier: float = 1.0


@dataclasses.dataclass(frozen=True)
class LRSweepConfig:
    """The LR range test (`train_loop.lr_finder.find_lr`) of tools.lr_find and
    of tools.train --max_lr=auto: `num_steps` steps with the lr growing
    exponentially from `min_lr` to `max_lr`, the loss smoothed with beta
    `smoothing`, stopping when the smoothed loss exceeds `divergence` times
    its best (<= 1: never early), the max lr suggested by `suggestion`
    ("steepest" or "min_div10", `lr_finder.suggest_lr`)."""
    min_lr: float = 1e-6
    max_lr: float = 1.0
    num_steps: int = 100
    smoothing: float = 0.98
    divergence: float = 4.0
    suggestion: str = "steepest"


# A training run's weight decay when none is given, where it differs from
# core.optim's (the optimizers' own conventions: SGD 0, AdamW 0.01). SGD: 2e-3,
# chosen on real imagery with brightness/contrast augmentation
# (benchmarks/quality/sweep.md: held-out mIoU at 400 steps 0.574 and 0.487,
# seeds 0 and 1, against 0.547 and 0.554 without it; 0.576 at 2000 against
# 0.571, seed 0: level within the spread between seeds, chosen with the
# augmentation for the long runs, see README "Defaults and how they were chosen").
TRAINING_WEIGHT_DECAY = {"sgd": 2e-3}


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """The optimizer ("sgd" or "adamw", `core.optim.make_optimizer`) and its schedule.

    `schedule` is "one_cycle" (lr and momentum from `core.schedules.one_cycle`
    over the whole run), "plateau" (constant `max_lr` reduced by
    ReduceOnPlateau on validation mean IoU) or "constant". For AdamW
    `momentum` is beta_1, the value one-cycle cycles (as torch's OneCycleLR
    does). `weight_decay` None becomes TRAINING_WEIGHT_DECAY's value for
    the optimizer, else core.optim's default: 2e-3 for sgd, 0.01 for adamw
    (torch.optim.AdamW's).
    """
    # 0.15 with TrainConfig.loss ce+jaccard (was 0.2 with ce):
    # benchmarks/quality/sweep.md, real imagery, batch 8, held-out mIoU at
    # 60 / 150 / 400 steps; no other value measured keeps up at every length
    # (0.1 loses at 150, 0.2 at 400).
    max_lr: Optional[float] = 0.15  # None: not chosen yet (max_lr_auto)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: Optional[float] = None
    optimizer: str = "sgd"
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-8
    clip_norm: Optional[float] = None
    schedule: str = "one_cycle"
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal: str = "cos"
    base_momentum: float = 0.85
    max_momentum: float = 0.95
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    plateau_cooldown: int = 0
    min_lr: float = 1e-6
    early_stopping_patience: int = 0  # evaluations without improvement; 0 = off
    min_delta: float = 1e-4
    max_lr_auto: Optional[LRSweepConfig] = None

    def __post_init__(self):
        # Imported here so that this module stays free of TensorFlow.
        from core.optim import DEFAULT_WEIGHT_DECAY  # pylint: disable=import-outside-toplevel
        if self.optimizer not in DEFAULT_WEIGHT_DECAY:
            raise ValueError(f"OptimConfig.optimizer must be one of "
                             f"{sorted(DEFAULT_WEIGHT_DECAY)}, got {self.optimizer!r}")
        if self.weight_decay is None:  # resolved once, so config.json records the value used
            object.__setattr__(self, "weight_decay",
                               {**DEFAULT_WEIGHT_DECAY, **TRAINING_WEIGHT_DECAY}[self.optimizer])
        if self.max_lr is None and self.max_lr_auto is None:
            raise ValueError("OptimConfig.max_lr is None without max_lr_auto: give a "
                             "learning rate, or the sweep that chooses one")


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """The two loops: steps, evaluation, checkpoints, summaries."""
    train_steps: int = 1000
    steps_per_loop: int = 10
    eval_every: int = 100
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    jit_compile: bool = False
    seed: int = 0
    deterministic: bool = False
    summary_images: int = 2
    strategy: str = "default"


@dataclasses.dataclass(frozen=True)
class BatchNormConfig:
    """Batch-norm statistics: `momentum` of the moving averages (every layer,
    through the model constructor), and `recompute_batches` training batches
    on which `train_loop.bn_recompute` re-estimates them exactly before each
    evaluation (hence before the best-checkpoint decision and the final
    checkpoint); 0 disables the recompute."""
    momentum: float = 0.99
    recompute_batches: int = 20


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything `train_loop.controller.train` needs besides the data."""
    # Factories, not instances: OptimConfig() imports core.optim (TensorFlow),
    # and the binaries' flag modules read this module's defaults without it.
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: str = "ce+jaccard"  # see OptimConfig.max_lr
    class_weights: Optional[Tuple[float, ...]] = None
    focal_gamma: float = 2.0
    # None: no weighting; one value: the focal term times it; K values: per class.
    focal_alpha: Optional[Tuple[float, ...]] = None
    lovasz_per_image: bool = False
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    loop: LoopConfig = dataclasses.field(default_factory=LoopConfig)
    batch_norm: BatchNormConfig = dataclasses.field(default_factory=BatchNormConfig)
    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)

    def __post_init__(self):
        terms = loss_terms(self.loss)
        if self.focal_alpha is not None and "focal" not in terms:
            raise ValueError(f"TrainConfig.focal_alpha (--focal_alpha) is set but the loss "
                             f"{self.loss!r} has no focal term")
        if self.lovasz_per_image and "lovasz" not in terms:
            raise ValueError(f"TrainConfig.lovasz_per_image (--lovasz_per_image) is set but "
                             f"the loss {self.loss!r} has no lovasz term")

    def loss_kwargs(self) -> dict:
        """Keyword arguments of `core.losses.get_loss(self.loss, **kwargs)`:
        each option only when a term takes it (get_loss rejects the rest)."""
        terms = loss_terms(self.loss)
        kwargs = {"class_weights": self.class_weights}
        if "focal" in terms:
            kwargs["gamma"] = self.focal_gamma
            if self.focal_alpha is not None:
                alpha = self.focal_alpha
                kwargs["alpha"] = alpha[0] if len(alpha) == 1 else list(alpha)
        if "lovasz" in terms:
            kwargs["per_image"] = self.lovasz_per_image
        return kwargs


def loss_terms(spec: str) -> set:
    """The loss names in a spec such as "0.5*ce+1.0*lovasz" (parsed by get_loss)."""
    return set(re.findall(r"[a-z_]+", spec.lower()))


def experiment_name(config: TrainConfig, *, patch_size: int, scale: float,
                    batch_size: int) -> str:
    """Names a run from its config, like the talk's
    `unet_input256_skip4_residual_serialCenter_sgd_jaccard_bs50_onecycle`."""
    m, o = config.model, config.optim
    parts = ["unet" if m.encoder == "unet" else f"unet_{m.encoder}", f"input{patch_size}"]
    if scale != 1.0:
        parts.append(f"scale{scale:g}")
    parts += [
        f"skip{m.depth}",
        "residual" if m.residual else "plain",
        f"{m.center.split('_')[0]}Center",  # serial_dilated -> serialCenter
        o.optimizer + ("nesterov" if o.nesterov else ""),
        config.loss.replace("+", "_").replace("*", "x"),
        f"bs{batch_size}",
        o.schedule.replace("_", ""),
    ]
    if m.policy != "float32":
        parts.append(m.policy.replace("mixed_", ""))
    return "_".join(parts)


def to_dict(config) -> dict:
    """JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(config)
