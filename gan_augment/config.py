"""Frozen, validated configurations: the one source of truth for models, training and CLI defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar, get_args

from .errors import UsageError

# Every set of choices is written once, here; the CLI's choices are generated from these tuples.
Mode = Literal["per-class", "conditional", "unconditional"]
Loss = Literal["bce", "wgan-gp", "hinge"]
Upsample = Literal["nearest", "transposed"]
DNorm = Literal["auto", "batch", "none"]
Switch = Literal["auto", "on", "off"]
CompileMode = Literal["off", "default", "reduce-overhead", "max-autotune"]
TeacherKind = Literal["auto", "self-training", "ssl", "supervised", "none"]

MODES: tuple[str, ...] = get_args(Mode)
LOSSES: tuple[str, ...] = get_args(Loss)
UPSAMPLES: tuple[str, ...] = get_args(Upsample)
D_NORMS: tuple[str, ...] = get_args(DNorm)
SWITCHES: tuple[str, ...] = get_args(Switch)
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)
TEACHER_KINDS: tuple[str, ...] = get_args(TeacherKind)
MAX_WIDTH = 4096  # the largest width, noise or embedding length (the CLI's bound, and a checkpoint's)
MAX_CLASSES = 1000
MAX_IMAGE_SIZE = 1024  # the largest image side (the CLI's bound, and a checkpoint's)

TEACHER_MIN_CONFIDENCE = 0.9  # the teacher arms' default confidence threshold
EVALUATE_CLF_STEPS = 1000  # evaluate's secondary classifier steps when none are given (CLI and Python)


C = TypeVar("C", bound="_PlainConfig")


class _PlainConfig:
    """What every configuration shares: a plain-dict round trip (checkpoints, JSON) and validated copies."""

    _nested: ClassVar[dict[str, type[_PlainConfig]]] = {}  # fields that hold another configuration

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain dict (for checkpoints and JSON)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Rebuild a config from :meth:`to_dict` output, ignoring unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs = {k: v for k, v in d.items() if k in names}
        for name, nested in cls._nested.items():
            if isinstance(kwargs.get(name), dict):
                kwargs[name] = nested.from_dict(kwargs[name])
        return cls(**kwargs)

    def replace(self: C, **changes: Any) -> C:
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{name}={value!r} is not one of {', '.join(choices)}")


def _check_range(name: str, value: float, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise UsageError(f"{name}={value!r} is out of range: must be {bound}")


def base_size(image_size: int) -> tuple[int, int]:
    """Split an image size into the generator's starting size and its number of ×2 upsamplings.

    Args:
        image_size: Side of the square output image.

    Returns:
        ``(start, n_up)`` with ``start * 2**n_up == image_size``, ``3 <= start <= 7`` and
        ``n_up >= 1``.

    Raises:
        ValueError: If the size cannot be reached by doubling a start size between 3 and 7.
    """
    size, n_up = image_size, 0
    while size > 7 and size % 2 == 0:
        size //= 2
        n_up += 1
    if image_size < 8 or size > 7 or n_up < 1:
        raise UsageError(
            f"image_size={image_size} is not supported: it must be a start size of 3 to 7 doubled at "
            "least once (for example 16, 28, 32, 48, 64, 96, 128)"
        )
    return size, n_up


@dataclass(frozen=True)
class ModelConfig(_PlainConfig):
    """Architecture of one DCGAN (generator and discriminator).

    Attributes:
        image_size: Side of the square images, in pixels (16, 28, 32, 64, 128, ...).
        channels: 1 (grayscale) or 3 (RGB).
        num_classes: Number of classes the generator and discriminator are conditioned on;
            0 for an unconditional model (per-class and unconditional modes).
        z_dim: Length of the noise vector.
        embed_dim: Length of the class embedding concatenated to the noise (conditional only).
        g_width: Channels of the generator's last block; earlier blocks double it, up to 8×.
        d_width: Channels of the discriminator's first block; later blocks double it, up to 8×.
        upsample: ``nearest`` (the article: upsample ×2 then 3×3 conv) or ``transposed``
            (4×4 stride-2 transposed convolutions, the classic DCGAN).
        d_dropout: Dropout probability after each discriminator activation.
        d_norm: ``batch`` (the article), ``none``, or ``auto``: inside a :class:`TrainConfig`,
            ``none`` for the wgan-gp loss (its gradient penalty assumes per-sample critic
            outputs) and ``batch`` otherwise; on its own, ``batch``.
    """

    image_size: int = 32  # output side in pixels
    channels: int = 3  # 1 or 3
    num_classes: int = 0  # 0: unconditional
    z_dim: int = 100  # noise vector length
    embed_dim: int = 50  # class embedding length (conditional generator)
    g_width: int = 64  # channels of the generator's last block
    d_width: int = 64  # channels of the discriminator's first block
    upsample: Upsample = "nearest"
    d_dropout: float = 0.25
    d_norm: DNorm = "auto"

    def __post_init__(self) -> None:
        _check_range("image_size", self.image_size, 8, MAX_IMAGE_SIZE)
        base_size(self.image_size)
        if self.channels not in (1, 3):
            raise UsageError(f"channels={self.channels!r} is not supported: use 1 or 3")
        _check_range("num_classes", self.num_classes, 0, MAX_CLASSES)
        _check_range("z_dim", self.z_dim, 1, MAX_WIDTH)
        _check_range("embed_dim", self.embed_dim, 1, MAX_WIDTH)
        _check_range("g_width", self.g_width, 1, MAX_WIDTH)
        _check_range("d_width", self.d_width, 1, MAX_WIDTH)
        _check_choice("upsample", self.upsample, UPSAMPLES)
        _check_range("d_dropout", self.d_dropout, 0.0, 0.99)
        _check_choice("d_norm", self.d_norm, D_NORMS)

    @property
    def batch_norm_in_d(self) -> bool:
        """Whether the discriminator's blocks (after the first) have BatchNorm."""
        return self.d_norm != "none"


@dataclass(frozen=True)
class TrainConfig(_PlainConfig):
    """Everything ``gan-augment fit`` needs besides the folders.

    Attributes:
        mode: ``per-class`` (one DCGAN per class), ``conditional`` (one class-conditional DCGAN)
            or ``unconditional`` (one DCGAN on all images, labels ignored).
        image_size: Side of the square training images; images are resized and centre-cropped.
            The one source of the models' size: ``model.image_size`` is set from it.
        channels: 1 or 3; 0 picks 1 when every image is grayscale and 3 otherwise.
        steps: Training steps; in per-class mode every class model takes this many steps.
        pretrain_steps: Steps of unconditional pre-training on all images (labeled and
            unlabeled) from which every per-class model starts; -1 picks ``steps // 2`` when an
            unlabeled folder is given and 0 otherwise. Per-class mode only.
        batch_size: Real images per discriminator step (per class model in per-class mode).
        loss: ``bce`` (non-saturating, the article), ``wgan-gp`` or ``hinge``.
        gp_weight: Weight of the gradient penalty (wgan-gp only).
        unroll: Unrolled-GAN steps: the generator's loss is taken against a copy of D advanced
            this many extra steps (0 disables; first-order variant, no gradient through them).
        lr_g: Generator learning rate (Adam).
        lr_d: Discriminator learning rate (Adam).
        beta1: Adam beta1.
        beta2: Adam beta2.
        ema_decay: Decay of the exponential moving average of generator weights (0 disables).
        diffaugment: Differentiable augmentation of real and fake images before D
            (colour, translation, cutout): ``auto`` (on below ``diffaugment_below`` training images
            per model), ``on`` or ``off``.
        diffaugment_below: The ``auto`` threshold, in images per model.
        amp: bf16 autocast on CUDA (ignored on CPU); off for wgan-gp, whose penalty needs
            accurate second derivatives.
        seed: Seed of every random choice of the run.
        log_every: Steps between rows of ``metrics.jsonl``.
        sample_every: Steps between sample grids in ``samples/``.
        checkpoint_every: Steps between checkpoint writes (one is always written at the end).
        checkpoint_minutes: Minutes between checkpoint writes as well, whatever the steps (0: by
            steps only), so a closed laptop or a killed job loses minutes, not the run; the
            run's teacher saves on the same clock.
        max_rollbacks: Divergence handling: how many times a diverged run (NaN or inf in a loss
            or in the weights, or a collapsed discriminator loss) is rolled back to its last
            checkpoint with both learning rates halved before training stops with an error.
        collapse_steps: A BCE or hinge discriminator loss below 1e-3 for this many consecutive
            steps counts as divergence (0 turns the check off).
        teacher: The classifier ``fit`` keeps in the run (``teacher.pt``) to label the images of
            ``GANAugmentedDataset(base_ds, run)``: ``self-training`` (a small ResNet on the labels, then rounds
            of self-training on the unlabeled images; colour images), ``ssl`` (the semi-supervised GAN's
            discriminator), ``supervised`` (it on the labels alone), ``none``, or ``auto`` (with an unlabeled
            folder ``self-training`` on colour images and ``ssl`` on gray ones, else ``supervised``).
        teacher_steps: The teacher's iterations (self-training: the steps of each of its two stages, every
            phase scaled to add up to them); 0 picks them by device, network and data
            (``gan_augment.train.teacher.default_teacher_steps``, ``train.self_training.self_training_config``).
        model: The model architecture. Its ``image_size`` (and ``channels``, unless auto) are
            set from this configuration's and an ``auto`` ``d_norm`` is resolved from ``loss``
            here; auto channels and ``num_classes`` are set from the data when training starts.
    """

    mode: Mode = "per-class"
    image_size: int = 32
    channels: int = 0  # 0: auto
    steps: int = 5000
    pretrain_steps: int = -1  # -1: auto
    batch_size: int = 64
    loss: Loss = "bce"
    gp_weight: float = 10.0
    unroll: int = 0
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.999
    diffaugment: Switch = "auto"
    diffaugment_below: int = 10000
    amp: bool = True
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    checkpoint_minutes: float = 5.0
    max_rollbacks: int = 3
    collapse_steps: int = 1000
    teacher: TeacherKind = "auto"
    teacher_steps: int = 0  # 0: auto
    model: ModelConfig = field(default_factory=ModelConfig)
    _nested: ClassVar[dict[str, type[_PlainConfig]]] = {"model": ModelConfig}

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _check_range("image_size", self.image_size, 8, MAX_IMAGE_SIZE)
        base_size(self.image_size)
        if self.channels not in (0, 1, 3):
            raise UsageError(f"channels={self.channels!r} is not supported: use 0 (auto), 1 or 3")
        _check_range("steps", self.steps, 1)
        _check_range("pretrain_steps", self.pretrain_steps, -1)
        _check_range("batch_size", self.batch_size, 2, 65536)
        _check_choice("loss", self.loss, LOSSES)
        _check_range("gp_weight", self.gp_weight, 0.0)
        _check_range("unroll", self.unroll, 0, 100)
        _check_range("lr_g", self.lr_g, 1e-8, 1.0)
        _check_range("lr_d", self.lr_d, 1e-8, 1.0)
        _check_range("beta1", self.beta1, 0.0, 0.9999)
        _check_range("beta2", self.beta2, 0.0, 0.99999)
        _check_range("ema_decay", self.ema_decay, 0.0, 0.99999)
        _check_choice("diffaugment", self.diffaugment, SWITCHES)
        _check_range("diffaugment_below", self.diffaugment_below, 0)
        _check_range("log_every", self.log_every, 1)
        _check_range("sample_every", self.sample_every, 1)
        _check_range("checkpoint_every", self.checkpoint_every, 1)
        _check_range("checkpoint_minutes", self.checkpoint_minutes, 0.0, 10_000.0)
        _check_range("max_rollbacks", self.max_rollbacks, 0, 100)
        _check_range("collapse_steps", self.collapse_steps, 0)
        _check_choice("teacher", self.teacher, TEACHER_KINDS)
        _check_range("teacher_steps", self.teacher_steps, 0)
        # Derived inside the configuration, so Python callers get what the CLI gets.
        d_norm = self.model.d_norm
        if d_norm == "auto":
            d_norm = "none" if self.loss == "wgan-gp" else "batch"
        if self.model.image_size not in (self.image_size, ModelConfig.image_size):  # asked for, not what trains
            size = f"TrainConfig(image_size={self.image_size}) and its model's image_size={self.model.image_size}"
            raise UsageError(f"{size} disagree: give the size once, as TrainConfig(image_size=...)")
        channels = self.channels or self.model.channels  # 0 (auto): the data decides when training starts
        derived = {"image_size": self.image_size, "channels": channels, "d_norm": d_norm}
        if any(getattr(self.model, k) != v for k, v in derived.items()):
            object.__setattr__(self, "model", dataclasses.replace(self.model, **derived))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (and validated); a new ``image_size`` resizes the models too."""
        if "image_size" in changes and "model" not in changes:
            changes["model"] = dataclasses.replace(self.model, image_size=changes["image_size"])
        return dataclasses.replace(self, **changes)


# ``fit`` on a CPU without a configuration: the article's DCGANs take hours on 2 cores; these, the benchmark's CPU
# protocol (``--cpu-reduced``, so its MNIST results are fit's defaults'), take 3 minutes on MNIST-sized data.
CPU_SIZES: dict[str, Any] = {"steps": 400, "batch_size": 32, "g_width": 8, "d_width": 16, "z_dim": 64}


def sizes_for(device_type: str) -> dict[str, Any]:
    """The sizes ``fit`` uses on ``device_type`` (``cpu``, ``cuda``, ...) for the settings not given:
    :data:`CPU_SIZES` on a CPU, the defaults of :class:`TrainConfig` (the article's) elsewhere."""
    return dict(CPU_SIZES) if device_type == "cpu" else {}


def for_device(device_type: str, **changes: Any) -> TrainConfig:
    """A :class:`TrainConfig` with the sizes for ``device_type`` (:func:`sizes_for`), then ``changes``
    (fields of the configuration or of its model) on top."""
    model_names = {f.name for f in dataclasses.fields(ModelConfig)} - {f.name for f in dataclasses.fields(TrainConfig)}
    sizes = sizes_for(device_type)
    if "model" in changes:  # a model given whole keeps its own sizes
        sizes = {k: v for k, v in sizes.items() if k not in model_names}
    values = {**sizes, **changes}
    model = values.pop("model", None) or ModelConfig()
    model = dataclasses.replace(model, **{k: values.pop(k) for k in list(values) if k in model_names})
    return TrainConfig(model=model, **values)


def default(cls: type, name: str) -> Any:
    """Return the default of field ``name`` of dataclass ``cls`` (CLI defaults come from here)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


SSLArchitecture = Literal["auto", "mlp", "conv"]
SSL_ARCHITECTURES: tuple[str, ...] = get_args(SSLArchitecture)


@dataclass(frozen=True)
class SSLConfig(_PlainConfig):
    """The semi-supervised GAN (Salimans et al. 2016, feature matching) and its own training budget.

    Attributes:
        architecture: ``mlp`` (the paper's MNIST networks: a weight-normalised MLP discriminator
            with Gaussian noise on its input and hidden layers), ``conv`` (the paper's CIFAR-10
            discriminator: weight-normalised convolutions, dropout, NIN layers, global pooling;
            a DCGAN generator), or ``auto``: ``mlp`` for grayscale images of at most 32 px.
        steps: Iterations; each is one discriminator step (labeled, unlabeled and fake batches)
            and one generator step (feature matching against a separate unlabeled batch). 0 picks
            what fits the device and networks (``gan_augment.train.ssl.default_ssl_steps``).
        batch_size: Images in each of those batches (the paper: 100).
        lr: Adam's learning rate for both networks; 0 picks the paper's (mlp 0.003, conv 0.0003).
        beta1: Adam's β1 (the paper: 0.5).
        decay_from: Fraction of ``steps`` after which the learning rate decays linearly to 0
            (1 keeps it constant).
        ema_decay: Decay of the average of the discriminator's weights that evaluates and is
            saved (bias-corrected, so a short run is not pulled towards its initial weights).
        unlabeled_weight: Weight of the unsupervised (real vs fake) loss.
        consistency: Weight of a consistency term between two noisy or augmented passes of the
            discriminator over the unlabeled batch (CT-GAN's is about 0.1); 0 turns it off.
        entropy: Weight of the mean entropy of the unlabeled predictions (entropy minimisation);
            0 turns it off.
        z_dim: Length of the generator's noise.
        width: ``conv`` only: channels of the discriminator's first three convolutions (the paper's
            96; the later ones twice as many; its generator's width two thirds of it).
        init_images: Unlabeled images for the discriminator's data-dependent initialisation.
        seed: Seed of the initialisation, the batches and the noise.
    """

    architecture: SSLArchitecture = "auto"
    steps: int = 0  # 0: auto
    batch_size: int = 100
    lr: float = 0.0
    beta1: float = 0.5
    decay_from: float = 2 / 3
    ema_decay: float = 0.999
    unlabeled_weight: float = 1.0
    consistency: float = 0.0
    entropy: float = 0.0
    z_dim: int = 100
    width: int = 96
    init_images: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        _check_choice("architecture", self.architecture, SSL_ARCHITECTURES)
        _check_range("steps", self.steps, 0)
        _check_range("batch_size", self.batch_size, 2, 65536)
        _check_range("lr", self.lr, 0.0, 1.0)
        _check_range("beta1", self.beta1, 0.0, 0.9999)
        _check_range("decay_from", self.decay_from, 0.0, 1.0)
        _check_range("ema_decay", self.ema_decay, 0.0, 0.99999)
        _check_range("unlabeled_weight", self.unlabeled_weight, 0.0)
        _check_range("consistency", self.consistency, 0.0)
        _check_range("entropy", self.entropy, 0.0)
        _check_range("z_dim", self.z_dim, 1, MAX_WIDTH)
        _check_range("width", self.width, 4, MAX_WIDTH)
        _check_range("init_images", self.init_images, 2)

    def resolved_architecture(self, image_size: int, channels: int) -> str:
        """``mlp`` or ``conv`` for images of this size and channel count."""
        if self.architecture != "auto":
            return self.architecture
        return "mlp" if channels == 1 and image_size <= 32 else "conv"

    def learning_rate(self, architecture: str) -> float:
        """``lr``, or the paper's for ``architecture`` when 0."""
        return self.lr or {"mlp": 0.003, "conv": 0.0003}[architecture]
