"""Model, loss, optimizer, schedule, precision and loop flags of tools.train
(tools.lr_find reads the same ones; the LR range test's --sweep_* flags are
tools/sweep_flags.py's), their cross-flag rules, and the one place they
become a frozen `TrainConfig`.
"""
import dataclasses

from absl import flags

from tools import data_flags  # noqa: F401  (data flags: --patch_size, --seed, ...)
from tools import encoder_flags  # noqa: F401  (--encoder)
from tools import sweep_flags  # (--sweep_*: the LR range test of lr_find and --max_lr=auto)
from train_loop.config import (BatchNormConfig, EncoderConfig, LoopConfig, ModelConfig,
                               OptimConfig, TrainConfig)

# Defaults are the config dataclasses' (one home); the flags only name them.
_M, _O, _L, _B, _T = ModelConfig, OptimConfig, LoopConfig, BatchNormConfig, TrainConfig
_E = EncoderConfig

# --- model ---
flags.DEFINE_integer("filters", _M.filters, "Filters of the first U-Net level (doubled per level).")
flags.DEFINE_enum("depth", str(_M.depth), ["3", "4", "5"], "U-Net skips (levels).")
flags.DEFINE_boolean("residual", _M.residual, "Residual blocks instead of plain conv blocks.")
flags.DEFINE_enum("center", _M.center, ["conv", "serial_dilated", "parallel_dilated", "residual"],
                  "U-Net center block.")
flags.DEFINE_string("encoder_weights", None, "Folder written by tools.import_encoder "
                    "(encoder.json + checkpoint) to start the encoder from; default: "
                    "random initialisation.")
flags.DEFINE_integer("freeze_encoder_steps", _E.freeze_steps,
                     "Steps during which the pretrained encoder "
                     "is frozen: no update, batch-norm statistics fixed.")
flags.DEFINE_float("encoder_lr_multiplier", _E.lr_multiplier,
                   "The pretrained encoder's learning rate "
                   "is this times the schedule's.")
# --- batch norm ---
flags.DEFINE_float("bn_momentum", _B.momentum, "Momentum of the batch-norm moving averages "
                   "(every layer).")
flags.DEFINE_integer("bn_recompute_batches", _B.recompute_batches,
                     "Before every evaluation (and so before "
                     "the best and final checkpoints), re-estimate the batch-norm moving "
                     "statistics exactly, on this many training batches drawn from a "
                     "second, fixed-seed iterator, weights frozen (0: keep the moving "
                     "averages).")
# --- loss ---
flags.DEFINE_string("loss", _T.loss, "ce|focal|jaccard|dice|lovasz or a weighted sum such as "
                    "'ce+jaccard' or '0.5*ce+1.0*lovasz'.")
flags.DEFINE_list("class_weights", None, "Per-class loss weights, one float per class.")
flags.DEFINE_float("focal_gamma", _T.focal_gamma, "Focusing parameter of the focal loss.")
flags.DEFINE_list("focal_alpha", _T.focal_alpha, "Focal loss alpha: one float (the focal term "
                  "times it) or one per class (pixels weighted by their class's); default none, "
                  "no rescaling (RetinaNet's 0.25 is for its binary sigmoid form).")
flags.DEFINE_boolean("lovasz_per_image", _T.lovasz_per_image, "Lovasz loss per image, averaged "
                     "over the batch's images (Berman's per_image=True), instead of over the "
                     "batch.")
# --- optimizer and schedule ---
AUTO = "auto"


class _LearningRateOrAuto(flags.ArgumentParser):
    """--max_lr: a positive float, or "auto" (the LR range test chooses it)."""

    def parse(self, argument):
        if isinstance(argument, str) and argument.strip().lower() == AUTO:
            return AUTO
        try:
            value = float(argument)
        except (TypeError, ValueError):
            value = float("nan")
        if not 0 < value < float("inf"):
            raise ValueError("--max_lr must be a positive number or 'auto' (the LR range "
                             "test's suggestion), e.g. --max_lr=0.2")
        return value

    def flag_type(self):
        return "float or 'auto'"


flags.DEFINE(_LearningRateOrAuto(), "max_lr", _O.max_lr,
             "Peak (one_cycle) or initial (plateau, constant) learning rate; 'auto': the "
             "suggestion of an LR range test run before training on a fresh model with the "
             "run's data, loss and optimizer (the --sweep_* flags, as tools.lr_find), recorded "
             "in config.json and kept when the run resumes.",
             serializer=flags.ArgumentSerializer())
flags.DEFINE_enum("optimizer", _O.optimizer, ["sgd", "adamw"], "sgd: SGD with momentum (Keras' "
                  "formulation); adamw: torch.optim.AdamW's rule.")
flags.DEFINE_float("momentum", _O.momentum, "SGD momentum, or AdamW's beta_1 (one_cycle cycles it "
                   "between --base_momentum and --max_momentum instead, as torch's OneCycleLR).")
flags.DEFINE_boolean("nesterov", _O.nesterov, "Nesterov momentum (sgd only).")
flags.DEFINE_float("weight_decay", None, "Decoupled weight decay on convolution kernels; "
                   "default 2e-3 for sgd (measured on real imagery), 0.01 for adamw "
                   "(torch.optim.AdamW's default).")
flags.DEFINE_float("adam_beta_2", _O.adam_beta_2, "adamw: decay rate of the second-moment average.")
flags.DEFINE_float("adam_epsilon", _O.adam_epsilon,
                   "adamw: added to sqrt(v) after its bias correction.")
flags.DEFINE_float("clip_norm", _O.clip_norm, "Clip gradients to this global norm.")
flags.DEFINE_enum("schedule", _O.schedule, ["one_cycle", "plateau", "constant"], "LR schedule.")
flags.DEFINE_float("epochs", None, "Training length in epochs (patches per epoch / batch).")
flags.DEFINE_integer("train_steps", None, "Training length in steps (instead of --epochs).")
flags.DEFINE_float("pct_start", _O.pct_start, "one_cycle: fraction of steps spent warming up.")
flags.DEFINE_float("div_factor", _O.div_factor, "one_cycle: initial lr = max_lr / div_factor.")
flags.DEFINE_float("final_div_factor", _O.final_div_factor,
                   "one_cycle: final lr = initial lr / this.")
flags.DEFINE_enum("anneal", _O.anneal, ["cos", "linear"], "one_cycle annealing.")
flags.DEFINE_float("base_momentum", _O.base_momentum, "one_cycle: lowest momentum (at peak lr).")
flags.DEFINE_float("max_momentum", _O.max_momentum, "one_cycle: highest momentum.")
flags.DEFINE_float("plateau_factor", _O.plateau_factor, "plateau: lr multiplier on a plateau.")
flags.DEFINE_integer("plateau_patience", _O.plateau_patience,
                     "plateau: evaluations without improvement.")
flags.DEFINE_integer("plateau_cooldown", _O.plateau_cooldown,
                     "plateau: evaluations to wait after a reduction.")
flags.DEFINE_float("min_lr", _O.min_lr, "plateau: lowest learning rate.")
flags.DEFINE_integer("early_stopping_patience", _O.early_stopping_patience,
                     "Stop after this many evaluations "
                     "without mean-IoU improvement (0: never).")
flags.DEFINE_float("min_delta", _O.min_delta,
                   "Smallest mean-IoU change that counts as improvement.")
# --- precision and speed ---
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                  "Compute dtype policy; auto: mixed_bfloat16 on a CPU with AVX-512 BF16/AMX "
                  "or a GPU of compute capability >= 8, mixed_float16 on older GPUs >= 7, "
                  "else float32.")
flags.DEFINE_boolean("jit_compile", None, "XLA-compile the train step; default: on GPU/TPU "
                     "only (on CPU XLA bypasses oneDNN convolutions and was slower).")
flags.DEFINE_integer("steps_per_loop", _L.steps_per_loop,
                     "Steps per tf.function call (inner loop).")
flags.DEFINE_integer("eval_every", 0, "Evaluate every N steps (0: once per epoch).")
flags.DEFINE_integer("checkpoint_every", 0, "Save `latest` every N steps (0: --eval_every).")
flags.DEFINE_integer("keep_checkpoints", _L.keep_checkpoints, "`latest` checkpoints kept.")
flags.DEFINE_integer("summary_images", _L.summary_images,
                     "Validation images written to TensorBoard.")
flags.DEFINE_enum("strategy", _L.strategy, ["default", "one_device", "mirrored", "multi_worker",
                                          "tpu"], "tf.distribute strategy.")
# --- workdir ---
flags.DEFINE_string("workdir_root", "runs", "Parent of experiment folders.")
flags.DEFINE_string("workdir", None, "Experiment folder (default: WORKDIR_ROOT/NAME-TIMESTAMP, "
                    "or the newest unfinished one of NAME, which resumes).")
flags.DEFINE_string("experiment_name", None, "Default: built from the config, like "
                    "unet_input256_skip4_residual_serialCenter_sgd_jaccard_bs50_onecycle.")
FLAGS = flags.FLAGS

flags.register_validator("steps_per_loop", lambda v: v >= 1, "--steps_per_loop must be >= 1")
flags.register_validator("pct_start", lambda v: 0.0 < v < 1.0, "--pct_start must be in (0, 1)")
flags.register_validator("adam_beta_2", lambda v: 0 <= v < 1, "--adam_beta_2 must be in [0, 1)")
flags.register_validator("adam_epsilon", lambda v: v >= 0, "--adam_epsilon must be >= 0")
flags.register_validator("weight_decay", lambda v: v is None or v >= 0,
                         "--weight_decay must be >= 0")
flags.register_validator("bn_momentum", lambda v: 0.0 <= v <= 1.0,
                         "--bn_momentum must be in [0, 1]")
flags.register_validator("bn_recompute_batches", lambda v: v >= 0,
                         "--bn_recompute_batches must be >= 0 (0: off)")
flags.register_validator("freeze_encoder_steps", lambda v: v >= 0,
                         "--freeze_encoder_steps must be >= 0")
flags.register_validator("encoder_lr_multiplier", lambda v: v >= 0,
                         "--encoder_lr_multiplier must be >= 0")


def _positive_numbers(values) -> bool:
    """A list flag of positive numbers ("1,x" is False here, not a ValueError
    traceback out of absl)."""
    try:
        return values is None or all(float(x) > 0 for x in values)
    except ValueError:
        return False


flags.register_validator("class_weights", _positive_numbers,
                         "--class_weights must be positive floats, e.g. 1,1,1,1,4,1")
flags.register_validator("focal_alpha", _positive_numbers,
                         "--focal_alpha must be positive floats: one, or one per class")
# Every other number, so that a bad value stops at parsing, before anything is
# prepared or written (name: (test, what it must be)).
_RANGES = {
    "filters": (lambda v: v >= 1, ">= 1"),
    "focal_gamma": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "clip_norm": (lambda v: v is None or v > 0, "> 0"),
    "div_factor": (lambda v: v > 0, "> 0"),
    "final_div_factor": (lambda v: v > 0, "> 0"),
    "plateau_factor": (lambda v: 0 < v < 1, "in (0, 1)"),
    "plateau_patience": (lambda v: v >= 0, ">= 0"),
    "plateau_cooldown": (lambda v: v >= 0, ">= 0"),
    "min_lr": (lambda v: v >= 0, ">= 0"),
    "early_stopping_patience": (lambda v: v >= 0, ">= 0 (0: never)"),
    "min_delta": (lambda v: v >= 0, ">= 0"),
    "eval_every": (lambda v: v >= 0, ">= 0 (0: once per epoch)"),
    "checkpoint_every": (lambda v: v >= 0, ">= 0 (0: --eval_every)"),
    "keep_checkpoints": (lambda v: v >= 1, ">= 1"),
    "summary_images": (lambda v: v >= 0, ">= 0"),
}
for _name, (_test, _what) in _RANGES.items():
    flags.register_validator(_name, _test, f"--{_name} must be {_what}")


@flags.multi_flags_validator(["loss", "focal_alpha", "lovasz_per_image"],
                             message="--focal_alpha needs a focal term in --loss (focal, "
                             "ce+focal, ...) and --lovasz_per_image a lovasz term")
def _loss_options_have_their_term(values):
    from train_loop.config import loss_terms  # pylint: disable=import-outside-toplevel
    terms = loss_terms(values["loss"])
    return ((values["focal_alpha"] is None or "focal" in terms)
            and (not values["lovasz_per_image"] or "lovasz" in terms))


@flags.multi_flags_validator(["base_momentum", "max_momentum"],
                             message="need 0 <= --base_momentum <= --max_momentum < 1")
def _momentum_range(values):
    return 0 <= values["base_momentum"] <= values["max_momentum"] < 1


@flags.multi_flags_validator(["epochs", "train_steps"],
                             message="give exactly one of --epochs or --train_steps (> 0)")
def _one_length(values):
    return (values["epochs"] is None) != (values["train_steps"] is None) and (
        (values["epochs"] or 0) > 0 or (values["train_steps"] or 0) > 0)


@flags.multi_flags_validator(
    ["encoder", "encoder_weights", "freeze_encoder_steps", "encoder_lr_multiplier"],
    message="--encoder_weights, --freeze_encoder_steps and --encoder_lr_multiplier "
            "need a pretrained --encoder (resnet50, convnext_tiny)")
def _pretrained_options(values):
    return values["encoder"] != "unet" or (
        values["encoder_weights"] is None and values["freeze_encoder_steps"] == 0
        and values["encoder_lr_multiplier"] == 1.0)


@flags.multi_flags_validator(["optimizer", "nesterov"],
                             message="--nesterov is an sgd option; drop it for --optimizer=adamw")
def _nesterov_is_sgd(values):
    return values["optimizer"] == "sgd" or not values["nesterov"]


@flags.multi_flags_validator(["patch_size", "depth"],
                             message="--patch_size must be a multiple of 2**--depth")
def _patch_fits_depth(values):
    return values["patch_size"] % (2 ** int(values["depth"])) == 0


@flags.multi_flags_validator(["make_demo_data", "prepare_src"],
                             message="--make_demo_data needs --prepare_src (where tiles go)")
def _demo_needs_src(values):
    return not values["make_demo_data"] or bool(values["prepare_src"])


def _loss_spec(spec: str) -> bool:
    """--loss parses and names known losses (core.losses.get_loss's rule).
    The default needs no check: absl runs every validator, and this one
    imports TensorFlow, which a bad --patch_size should not wait for."""
    if spec == _T.loss:
        return True
    from core.losses import get_loss  # pylint: disable=import-outside-toplevel
    try:
        get_loss(spec)
    except ValueError as err:
        raise flags.ValidationError(str(err)) from None
    return True


flags.register_validator("loss", _loss_spec)


def resolve_precision(name: str) -> str:
    """The policy name for --precision (auto picks by hardware)."""
    from core.precision import default_policy_name  # pylint: disable=import-outside-toplevel
    return default_policy_name() if name == "auto" else name


def train_config_from_flags(flag_values, steps_per_epoch: int, num_classes: int):
    """Builds the frozen TrainConfig once; library code never sees FLAGS."""
    import os  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    f = flag_values
    weights = tuple(float(w) for w in f.class_weights) if f.class_weights else None
    if weights is not None and len(weights) != num_classes:
        raise flags.ValidationError(
            f"--class_weights has {len(weights)} values; the data has {num_classes} classes")
    alpha = tuple(float(a) for a in f.focal_alpha) if f.focal_alpha else None
    if alpha is not None and len(alpha) not in (1, num_classes):
        raise flags.ValidationError(
            f"--focal_alpha has {len(alpha)} values; give one, or one per class ({num_classes})")
    weights_info = None
    if f.encoder_weights:  # a wrong folder fails here, before anything is written
        from layers.pretrained import read_encoder_info  # pylint: disable=import-outside-toplevel
        weights_info = read_encoder_info(f.encoder_weights, f.encoder)
    train_steps = f.train_steps or max(1, int(round(f.epochs * steps_per_epoch)))
    from core import schedules  # pylint: disable=import-outside-toplevel
    min_steps = schedules.one_cycle_min_steps(f.pct_start)
    if f.schedule == "one_cycle" and train_steps < min_steps:
        # The schedule's own rule, said here before anything is written, not
        # from inside the first step.
        given = (f"--train_steps={train_steps}" if f.train_steps else
                 f"--epochs={f.epochs} ({train_steps} steps)")
        raise flags.ValidationError(
            f"{given} is too short for --schedule=one_cycle with --pct_start={f.pct_start}: "
            f"its warm-up needs pct_start * steps > 1, at least {min_steps} steps; train "
            "longer or use --schedule=constant")
    eval_every = f.eval_every or steps_per_epoch
    jit = f.jit_compile
    if jit is None:
        jit = bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))
    return TrainConfig(
        model=ModelConfig(filters=f.filters, depth=int(f.depth), residual=f.residual,
                          center=f.center, policy=resolve_precision(f.precision),
                          encoder=f.encoder),
        loss=f.loss, class_weights=weights, focal_gamma=f.focal_gamma, focal_alpha=alpha,
        lovasz_per_image=f.lovasz_per_image,
        optim=OptimConfig(
            max_lr=None if f.max_lr == AUTO else f.max_lr,
            max_lr_auto=sweep_flags.sweep_config_from_flags(f) if f.max_lr == AUTO else None,
            momentum=f.momentum, nesterov=f.nesterov,
            weight_decay=f.weight_decay, clip_norm=f.clip_norm, schedule=f.schedule,
            optimizer=f.optimizer, adam_beta_2=f.adam_beta_2, adam_epsilon=f.adam_epsilon,
            pct_start=f.pct_start, div_factor=f.div_factor, final_div_factor=f.final_div_factor,
            anneal=f.anneal, base_momentum=f.base_momentum, max_momentum=f.max_momentum,
            plateau_factor=f.plateau_factor, plateau_patience=f.plateau_patience,
            plateau_cooldown=f.plateau_cooldown, min_lr=f.min_lr,
            early_stopping_patience=f.early_stopping_patience, min_delta=f.min_delta),
        loop=LoopConfig(
            train_steps=train_steps, steps_per_loop=f.steps_per_loop, eval_every=eval_every,
            checkpoint_every=f.checkpoint_every or eval_every,
            keep_checkpoints=f.keep_checkpoints, jit_compile=jit, seed=f.seed,
            deterministic=f.deterministic, summary_images=f.summary_images,
            strategy=f.strategy),
        batch_norm=BatchNormConfig(momentum=f.bn_momentum,
                                   recompute_batches=f.bn_recompute_batches),
        encoder=EncoderConfig(
            weights=os.path.abspath(f.encoder_weights) if f.encoder_weights else None,
            weights_info=weights_info,
            freeze_steps=f.freeze_encoder_steps, lr_multiplier=f.encoder_lr_multiplier))


@dataclasses.dataclass(frozen=True)
class Setup:
    """What tools.train and tools.lr_find both derive from the flags."""
    pipeline: object  # core.data.pipeline.PipelineConfig
    info: dict  # pipeline.dataset_info: classes, bands, mean, std of the fed channels
    steps_per_epoch: int
    config: object  # train_loop.config.TrainConfig
    name: str  # --experiment_name or the one built from the config
    run_config: dict  # what config.json records (train_loop.build.run_config)


def setup_from_flags(f) -> Setup:
    """Prepares the store on a flag file's first run, then builds the
    pipeline and training configs; user errors raise ValueError,
    FileNotFoundError or flags.ValidationError naming the flag or file."""
    from core.data import pipeline  # pylint: disable=import-outside-toplevel
    from train_loop import build  # pylint: disable=import-outside-toplevel
    from train_loop.config import experiment_name  # pylint: disable=import-outside-toplevel
    from tools import prepare_flags  # pylint: disable=import-outside-toplevel

    prepare_flags.prepare_if_needed(f)
    pipe_cfg = data_flags.pipeline_config_from_flags(f)
    info = pipeline.dataset_info(pipe_cfg)
    steps_per_epoch = max(1, pipeline.num_patches(pipe_cfg, "train") // pipe_cfg.batch_size)
    config = train_config_from_flags(f, steps_per_epoch, len(info["class_names"]))
    name = f.experiment_name or experiment_name(
        config, patch_size=pipe_cfg.patch_size, scale=pipe_cfg.scale,
        batch_size=pipe_cfg.batch_size)
    return Setup(pipe_cfg, info, steps_per_epoch, config, name,
                 build.run_config(config, info, pipe_cfg, name))


def make_strategy(name: str):
    """The tf.distribute strategy for --strategy."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
