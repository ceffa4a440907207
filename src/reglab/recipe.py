"""Recipe schema, YAML loading and dotted command-line overrides.

One schema carries every experiment: a recipe has the sections ``data``, ``model``, ``loss``,
``optim``, ``schedule``, ``augment``, ``train`` and ``evaluate``; every key has a default, unknown keys are refused, and any
key can be overridden from the command line as ``section.key=value`` (the value is read as YAML,
so ``train.epochs=3`` and ``loss.class_weights=[1,2,3]`` work; ``key=null`` restores the default,
so ``augment=null`` turns all augmentation off).
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator,
                      model_validator)  # fmt: skip

from .errors import UserError
from .metrics import BOUNDED_METRICS, EPOCH_METRICS
from .recipe_errors import RENAMED, describe, tags_of

MonitorMode = Literal["auto", "min", "max"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_monitor(name: str) -> str:
    if name not in EPOCH_METRICS:
        close = difflib.get_close_matches(name, EPOCH_METRICS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; one of {', '.join(EPOCH_METRICS)}"
        raise ValueError(f"unknown metric '{name}'{hint}")
    return name


Monitor = Annotated[str, AfterValidator(_check_monitor)]


def resolve_mode(monitor: str, mode: str) -> str:
    """``auto``: the direction in which the metric gets better (losses and the accuracy gap
    down; scores and the loss gap, train − val, up)."""
    return EPOCH_METRICS[monitor] if mode == "auto" else mode


class FrontendConfig(Section):
    """Log-mel front end for audio sources."""

    n_fft: int = Field(1024, ge=16)
    hop_length: int = Field(320, ge=1)
    n_mels: int = Field(96, ge=8)
    fmin: float = Field(0.0, ge=0.0)
    fmax: Optional[float] = Field(None, gt=0.0, description="null: half the sample rate")
    log_floor: float = Field(1e-6, gt=0.0)
    resize: Optional[int] = Field(None, gt=0, description="resize each spectrogram to this square size")


class DataConfig(Section):
    source: Literal["digits", "image_folder", "test_folder", "cifar", "tiny_imagenet", "irmas", "irmas_test"] = "digits"
    path: Optional[str] = Field(None, description="folder of the data set (not needed for digits)")
    labels: Optional[str] = Field(None, description="id,label CSV for a test_folder source")
    image_size: Optional[int] = Field(None, gt=0, description="resize to this square size; null keeps the native size")
    channels: Optional[Literal[1, 3]] = Field(None, description="1 (grey) or 3 (RGB); null: the source's own")
    classes: Union[None, int, list[str]] = Field(None, description="keep only these classes (or the first N by name)")
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = 0
    sample_rate: int = Field(16000, ge=1000, description="audio: resample every file to this rate")
    clip_seconds: float = Field(3.0, gt=0.0, description="audio: training clip and evaluation window length")
    window_hop_seconds: float = Field(1.5, gt=0.0, description="audio: hop between evaluation windows")
    on_error: Literal["raise", "skip"] = Field("raise", description="audio: an undecodable file stops the run or is skipped with a warning")
    frontend: FrontendConfig = FrontendConfig()
    cache_dir: Optional[str] = Field(".reglab-cache", description="audio feature cache (null: off)")

    @model_validator(mode="after")
    def _path_needed(self):
        if self.source != "digits" and not self.path:
            raise ValueError(f"data.path is required for source '{self.source}'")
        if isinstance(self.classes, int) and self.classes < 2:
            raise ValueError("data.classes must keep at least 2 classes")
        return self


class DropoutConfig(Section):
    rate: float = Field(0.0, ge=0.0, lt=1.0)
    where: Literal["head", "blocks"] = "head"


def tagged_union(default: str, members: dict[str, type[BaseModel]]):
    """A section whose ``name`` picks its schema among ``members`` (a pydantic discriminated
    union); a section without ``name`` takes ``default``'s."""
    choose = Discriminator(lambda value: value.get("name", default) if isinstance(value, dict) else getattr(value, "name", default))
    return Annotated[Union[tuple(Annotated[schema, Tag(name)] for name, schema in members.items())], choose]


# --- model: one schema per architecture ---------------------------------------------------------
class ModelBase(Section):
    dropout: DropoutConfig = DropoutConfig()
    input_norm: Literal["dataset", "per_band", "per_image"] = Field(
        "dataset", description="standardize by training-set statistics per channel or per frequency band, or per image"
    )

    @field_validator("dropout", mode="before")
    @classmethod
    def _rate_shorthand(cls, value: Any) -> Any:
        """``model.dropout=0.4`` is shorthand for ``{rate: 0.4}``."""
        return {"rate": value} if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class LinearModelConfig(ModelBase):
    name: Literal["linear"] = "linear"
    channels_last: ClassVar[bool] = False  # no convolutions


class ConvModelConfig(ModelBase):
    width: float = Field(1.0, gt=0.0, description="multiplier on every layer's channel count")
    batch_norm: Optional[bool] = Field(None, description="null: the architecture's default")
    channels_last: bool = Field(True, description="convolutions on NHWC tensors (faster with oneDNN on CPU and on CUDA)")


class AlexNetLikeConfig(ConvModelConfig):
    name: Literal["alexnet_like"] = "alexnet_like"
    lrn: bool = Field(False, description="local response normalization after the first two convolutions")


class ResNet18Config(ConvModelConfig):
    name: Literal["resnet18"] = "resnet18"
    stem: Literal["small", "standard"] = Field("small", description="3x3/1 stem for small images, or 7x7/2 + max-pool")


class InstruNetConfig(ConvModelConfig):
    name: Literal["instrunet"] = "instrunet"


ModelConfig = tagged_union(
    "resnet18", {"linear": LinearModelConfig, "alexnet_like": AlexNetLikeConfig, "resnet18": ResNet18Config, "instrunet": InstruNetConfig}
)


# --- loss ----------------------------------------------------------------------------------------
class LossBase(Section):
    class_weights: Union[Literal["none", "inverse_frequency", "effective_number"], list[float]] = "none"
    beta: float = Field(0.999, ge=0.0, lt=1.0, description="effective_number weights: (1 − β)/(1 − β^n)")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


class CrossEntropyConfig(LossBase):
    name: Literal["cross_entropy"] = "cross_entropy"
    logit_adjustment: float = Field(0.0, ge=0.0, description="τ of logit-adjusted cross-entropy (0: off)")


class FocalConfig(CrossEntropyConfig):
    name: Literal["focal"] = "focal"
    alpha: float = Field(1.0, gt=0.0, description="focal loss weight α")
    gamma: float = Field(2.0, ge=0.0, description="focal loss focusing γ")


class BinaryLossConfig(LossBase):
    name: Literal["ovr_bce", "bce"] = "bce"


LossConfig = tagged_union(
    "cross_entropy", {"cross_entropy": CrossEntropyConfig, "focal": FocalConfig, "ovr_bce": BinaryLossConfig, "bce": BinaryLossConfig}
)


# --- optimizer -----------------------------------------------------------------------------------
class OptimBase(Section):
    lr: float = Field(0.01, gt=0.0)
    l2: float = Field(0.0, ge=0.0, description="Keras-style penalty: λ·Σw² added to the loss")
    weight_decay: float = Field(0.0, ge=0.0, description="decoupled decay: w ← w·(1 − lr·wd) each step")
    penalize: list[Literal["conv", "linear", "norm", "bias"]] = Field(
        ["conv", "linear"], description="which parameters l2 and weight_decay touch"
    )


class SGDConfig(OptimBase):
    name: Literal["sgd"] = "sgd"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and self.momentum == 0:
            raise ValueError("optim.nesterov needs optim.momentum > 0")
        return self


class AdamConfig(OptimBase):
    name: Literal["adam", "adamw"] = "adam"
    betas: tuple[float, float] = (0.9, 0.999)


OptimConfig = tagged_union("sgd", {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamConfig})


# --- learning-rate schedule ----------------------------------------------------------------------
class NoScheduleConfig(Section):
    name: Literal["none"] = "none"


class StepScheduleConfig(Section):
    name: Literal["step"] = "step"
    step_size: int = Field(10, ge=1, description="epochs between decays")
    factor: float = Field(0.1, gt=0.0, lt=1.0, description="multiply the rate by this")


class PlateauScheduleConfig(Section):
    name: Literal["plateau"] = "plateau"
    monitor: Monitor = "val_loss"
    mode: MonitorMode = "auto"
    factor: float = Field(0.1, gt=0.0, lt=1.0, description="multiply the rate by this")
    patience: int = Field(3, ge=0, description="epochs without improvement")
    min_lr: float = Field(0.0, ge=0.0)


class CosineScheduleConfig(Section):
    name: Literal["cosine"] = "cosine"
    min_lr: float = Field(0.0, ge=0.0)


class OneCycleScheduleConfig(Section):
    name: Literal["onecycle"] = "onecycle"
    warmup_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="share of steps spent warming up")


ScheduleConfig = tagged_union("none", {"none": NoScheduleConfig, "step": StepScheduleConfig, "plateau": PlateauScheduleConfig,
                                        "cosine": CosineScheduleConfig, "onecycle": OneCycleScheduleConfig})  # fmt: skip


class EarlyStoppingConfig(Section):
    monitor: Monitor = Field("val_loss", description="also decides which epoch best.pt holds")
    mode: MonitorMode = "auto"
    patience: Optional[int] = Field(None, ge=1, description="null: never stop early")
    start_epoch: int = Field(1, ge=1, description="patience counts from this epoch on (past a warm-up; Keras' start_from_epoch)")
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = Field(False, description="end with the best epoch's weights")


class TrainConfig(Section):
    epochs: int = Field(10, ge=1)
    balanced_sampling: float = Field(0.0, ge=0.0, le=1.0, description="draw samples ∝ n_class^-power (0: plain shuffle)")
    repeats: int = Field(1, ge=1, description="visits of every sample per epoch (fresh augmentation and mixtures each time)")
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(128, ge=1, description="validation and evaluation batch; on a CPU a batch that stays in cache beats a large one (128 ran 1.1-2x faster than 512 here)")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "off"] = Field(
        "auto", description="bfloat16 autocast: auto (on CUDA), bf16 (on CUDA and on CPUs with bfloat16 instructions), off"
    )
    compile: bool = Field(
        False, description="torch.compile the training forward and backward: fuses batch norm, activations and residual adds "
        "(here InstruNet 1.5x, ResNet-18 1.1x, AlexNet-like 1.0x); the first epoch also compiles, 5-50 s, cached on disk after"
    )  # fmt: skip
    ema_decay: Optional[float] = Field(None, gt=0.0, lt=1.0, description="validate and keep an exponential moving average of the weights")
    parallel_seeds: int = Field(1, ge=1, le=64, description="studies: a worker trains up to this many seeds of an arm at once, as one vectorized network")
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()

    @model_validator(mode="after")
    def _compile_runs_alone(self) -> "TrainConfig":
        if self.compile and self.parallel_seeds > 1:
            raise ValueError("train.compile compiles one network; a stack of parallel_seeds runs under vmap, which it does not compile: set one of them off")
        return self

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_switch(cls, value: Any) -> Any:
        """``true``/``false`` (recipes before bf16 on CPU) mean auto/off."""
        return {True: "auto", False: "off"}.get(value, value) if isinstance(value, bool) else value


Range = tuple[float, float]


class ResizedCropConfig(Section):
    p: float = Field(1.0, ge=0.0, le=1.0)
    scale: Range = (0.5, 1.0)
    ratio: Range = (0.75, 4 / 3)


class TranslateConfig(Section):
    p: float = Field(1.0, ge=0.0, le=1.0)
    fraction: float = Field(0.1, gt=0.0, lt=1.0, description="largest shift, as a fraction of the side")


class RotationConfig(Section):
    p: float = Field(1.0, ge=0.0, le=1.0)
    degrees: float = Field(10.0, gt=0.0, le=180.0)


class ColorJitterConfig(Section):
    p: float = Field(1.0, ge=0.0, le=1.0)
    brightness: Union[float, Range] = 0.0
    contrast: Union[float, Range] = 0.0
    saturation: Union[float, Range] = 0.0
    hue: Union[float, Range] = 0.0


class ErasingConfig(Section):
    p: float = Field(0.5, ge=0.0, le=1.0)
    scale: Range = (0.02, 0.33)
    ratio: Range = (0.3, 3.3)


class PerClassConfig(Section):
    p_min: float = Field(0.3, ge=0.0, le=1.0)
    p_max: float = Field(0.7, ge=0.0, le=1.0)
    decide: Literal["sample", "batch"] = Field(
        "sample", description="each sample mixed with its own class's probability, or whole batches with their mean (the painter study)"
    )


class MixConfig(Section):
    mixup_alpha: float = Field(0.0, ge=0.0, description="Beta(α, α) for mixup (0: off)")
    cutmix_alpha: float = Field(0.0, ge=0.0, description="Beta(α, α) for CutMix (0: off)")
    p: float = Field(1.0, ge=0.0, le=1.0, description="probability that a batch is mixed")
    switch_p: float = Field(0.5, ge=0.0, le=1.0, description="with both on: probability of CutMix")
    per_class: Optional[PerClassConfig] = Field(None, description="rarer classes mix more often (replaces p)")

    @model_validator(mode="after")
    def _one_on(self):
        if self.mixup_alpha == 0 and self.cutmix_alpha == 0:
            raise ValueError("augment.mix needs mixup_alpha > 0 or cutmix_alpha > 0")
        return self


class MulticropConfig(Section):
    below: int = Field(50, ge=1, description="classes with fewer training samples than this get extra views")
    views: int = Field(2, ge=1, description="extra random-resized-crop views per minority sample and epoch")
    scale: Range = (0.35, 1.0)
    ratio: Range = Field((0.75, 4 / 3), description="aspect-ratio range of the crops; [1, 1] keeps shapes unstretched")


class SpecAugmentConfig(Section):
    freq_masks: int = Field(2, ge=0)
    freq_width: int = Field(12, ge=0, description="widest frequency mask, in mel bins")
    time_masks: int = Field(2, ge=0)
    time_width: int = Field(20, ge=0, description="widest time mask, in frames")


class FilterAugmentConfig(Section):
    p: float = Field(0.5, ge=0.0, le=1.0, description="share of spectrograms equalized")
    db: float = Field(6.0, ge=0.0, description="band-edge gains are U(−db, db) dB")
    bands: int = Field(4, ge=1, description="bands the mel axis is cut into")


class PitchShiftConfig(Section):
    p: float = Field(0.5, ge=0.0, le=1.0, description="share of spectrograms shifted")
    semitones: float = Field(1.0, gt=0.0, le=12.0, description="shifts are U(−semitones, semitones)")


class ReverbConfig(Section):
    p: float = Field(0.5, ge=0.0, le=1.0, description="share of spectrograms reverberated")
    rt60: Range = Field((0.2, 1.0), description="seconds for the tail to decay by 60 dB, drawn from this range")
    drr_db: Range = Field((0.0, 12.0), description="direct-to-reverberant power ratio in dB, drawn from this range")

    @field_validator("rt60")
    @classmethod
    def _positive_increasing(cls, value):
        if not 0 < value[0] <= value[1]:
            raise ValueError("must be [low, high] seconds with 0 < low <= high")
        return value


class CompressionConfig(Section):
    p: float = Field(0.5, ge=0.0, le=1.0, description="share of spectrograms compressed")
    max_ratio: float = Field(4.0, gt=1.0, description="compression ratios are U(1, max_ratio)")


class MixturesConfig(Section):
    p: float = Field(0.5, ge=0.0, le=1.0, description="share of clips mixed with others")
    max_sources: int = Field(3, ge=2, description="clips in a mixture, at most")
    gain_db: float = Field(6.0, ge=0.0, description="each added clip's gain is U(−gain_db, gain_db)")


class AugmentConfig(Section):
    """Training-time augmentation, applied to whole batches on the device; evaluation data is
    never augmented. A block left out (null) is off."""

    hflip: float = Field(0.0, ge=0.0, le=1.0, description="probability of a horizontal flip")
    vflip: float = Field(0.0, ge=0.0, le=1.0, description="probability of a vertical flip")
    resized_crop: Optional[ResizedCropConfig] = None
    translate: Optional[TranslateConfig] = None
    rotation: Optional[RotationConfig] = None
    color_jitter: Optional[ColorJitterConfig] = None
    erasing: Optional[ErasingConfig] = None
    mix: Optional[MixConfig] = None
    multicrop: Optional[MulticropConfig] = None
    specaugment: Optional[SpecAugmentConfig] = None
    filter_augment: Optional[FilterAugmentConfig] = None
    pitch_shift: Optional[PitchShiftConfig] = None
    reverb: Optional[ReverbConfig] = None
    compression: Optional[CompressionConfig] = None
    random_gain_db: float = Field(0.0, ge=0.0, description="spectrograms: random gain up to ± this many dB")
    time_shift: float = Field(0.0, ge=0.0, lt=1.0, description="spectrograms: random roll up to this fraction")
    mixtures: Optional[MixturesConfig] = None


class EvaluateConfig(Section):
    """How a trained model's scores become decisions. Single-label: optionally logit-adjusted for
    rare classes. Multi-label excerpts: window scores aggregated per excerpt, then a threshold."""

    logit_adjustment: Optional[Union[float, Literal["fit"]]] = Field(
        None, description="single-label: scores log p − τ·log(training prior); 'fit': τ fitted on validation (class-balanced log loss)"
    )

    channels: Literal["downmix", "each"] = Field("downmix", description="score excerpts on the downmix, or on it and each stereo channel (per window the highest)")
    aggregate: Literal["mean", "max", "topk"] = "mean"
    top_k: int = Field(2, ge=1, description="topk: mean of the k highest window scores")
    threshold: Union[float, Literal["tuned"]] = Field(0.5, description="a global threshold, or per-class ones tuned on validation mixtures")
    tuning_mixtures: int = Field(600, ge=10, description="validation mixtures built to tune thresholds")
    tuning_max_sources: int = Field(3, ge=1, description="clips per tuning mixture, at most")
    tuning_gain_db: float = Field(6.0, ge=0.0, description="each tuning-mixture clip's gain is U(−tuning_gain_db, tuning_gain_db)")

    @field_validator("threshold")
    @classmethod
    def _in_unit_interval(cls, value):
        if not isinstance(value, str) and not 0.0 < value < 1.0:
            raise ValueError("must be between 0 and 1, or 'tuned'")
        return value


class Recipe(Section):
    name: Optional[str] = None
    data: DataConfig = DataConfig()
    model: ModelConfig = ResNet18Config()
    loss: LossConfig = CrossEntropyConfig()
    optim: OptimConfig = SGDConfig()
    schedule: ScheduleConfig = NoScheduleConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    def to_dict(self) -> dict:
        """The recipe as plain data, each section's ``name`` (what picks its schema) first."""
        tree = self.model_dump(mode="json")
        for key, value in tree.items():
            if isinstance(value, dict) and "name" in value:
                tree[key] = {"name": value["name"], **{k: v for k, v in value.items() if k != "name"}}
        return tree


def section(kind: str, **values) -> Section:
    """One section of a recipe on its own, as the recipe would read it: ``section("loss", name="focal")``."""
    return getattr(Recipe.model_validate({kind: values}), kind)


class MeasuredConfig(Section):
    """How many trainings are compared: ``metric`` reduced over a run's epochs (``best``, ``last``,
    or its value ``at_epoch``), in the metric's own direction unless told otherwise."""

    metric: Monitor = "val_macro_f1"
    reduce: Literal["best", "last"] = "best"
    at_epoch: Optional[int] = Field(None, ge=1, description="compare the metric at this epoch instead")
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    heartbeat_seconds: int = Field(10, ge=1, description="a worker silent for 3 heartbeats is presumed dead")

    @property
    def maximize(self) -> bool:
        if self.direction == "auto":
            return resolve_mode(self.metric, "auto") == "max"
        return self.direction == "maximize"


class AdaptiveSeeds(Section):
    """Seeds added in rounds of ``step`` from ``min`` to ``max`` to each arm whose comparison with the
    baseline is not decided yet (``stats.sequential_seeds``)."""

    min: int = Field(3, ge=2)
    max: int = Field(20, ge=2)
    step: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.min > self.max:
            raise ValueError(f"study.seeds: min {self.min} is above max {self.max}")
        return self


class StudyConfig(MeasuredConfig):
    """A controlled comparison: every arm (a set of dotted overrides of the base recipe) is run
    once per seed and compared against the ``baseline`` arm, paired by seed: a fixed list of
    seeds, or seeds added until each arm is decided."""

    arms: dict[str, dict[str, Any]]
    baseline: str
    seeds: Annotated[
        Union[Annotated[list[int], Tag("list")], Annotated[AdaptiveSeeds, Tag("adaptive")]],
        Discriminator(lambda value: "adaptive" if isinstance(value, (dict, AdaptiveSeeds)) else "list"),
    ] = [0, 1, 2]

    alpha: float = Field(0.05, gt=0, lt=0.5, description="family-wise error rate of the table's verdicts (Holm over the arms)")
    margin: Optional[float] = Field(None, description="equivalence margin ±δ in the metric's units (two one-sided tests)")
    also: list[Monitor] = Field([], description="exploratory columns: other per-epoch values at the compared epoch, no verdict")
    split_follows_seed: Optional[bool] = Field(
        None, description="each seed draws its own train/validation split (data.split_seed = the seed); "
        "default: yes unless the recipe sets data.split_seed")  # fmt: skip

    @property
    def looks(self) -> Optional[list[int]]:
        """Seed counts at which an arm is compared with adaptive seeds; None for a fixed list
        (one comparison on all its seeds)."""
        if isinstance(self.seeds, list):
            return None
        return sorted(set(range(self.seeds.min, self.seeds.max, self.seeds.step)) | {self.seeds.max})

    @property
    def seeds_text(self) -> str:
        if isinstance(self.seeds, list):
            return f"{len(self.seeds)} seeds"
        return f"seeds added until decided (compared at {', '.join(map(str, self.looks))})"

    @property
    def seed_values(self) -> list[int]:
        """Every seed a run may have."""
        return list(self.seeds) if isinstance(self.seeds, list) else list(range(self.seeds.max))

    @model_validator(mode="after")
    def _consistent(self):
        if not self.arms:
            raise ValueError("study.arms must name at least one arm")
        for arm in self.arms:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", arm):
                raise ValueError(f"study.arms: arm name {arm!r} may hold only letters, digits, '.', '_' and '-' (it names run directories)")
        if self.baseline not in self.arms:
            raise ValueError(f"study.baseline '{self.baseline}' is not one of the arms ({', '.join(self.arms)})")
        if isinstance(self.seeds, list) and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError("study.seeds must list at least one seed, none twice")
        if self.margin is not None:
            if not self.margin > 0:
                raise ValueError(f"study.margin must be above 0 (a difference in {self.metric} that does not matter), got {self.margin}")
            if self.metric in BOUNDED_METRICS and self.margin >= 1:
                raise ValueError(f"study.margin {self.margin} is not below {self.metric}'s whole range (0 to 1): give it in the metric's units")
        return self


class SearchConfig(MeasuredConfig):
    """A sweep: configurations of the base recipe drawn from ``space`` (dotted key → distribution)
    and ``cocktail`` (regularizers the search may switch on, each with the keys it samples only
    when on; Kadra et al. 2021) and ``variants`` (named sets of overrides), one seed each, ranked by
    ``metric``; see ``search_space.py``."""

    space: dict[str, Any] = {}
    cocktail: dict[str, Any] = {}
    variants: dict[str, Any] = {}
    sampler: Literal["grid", "random", "tpe"] = "tpe"
    seed: int = Field(0, description="the sampler's seed: the same recipe proposes the same configurations")
    trials: int = Field(20, ge=1, description="random and tpe: configurations tried (--trials)")
    pruner: Literal["none", "median", "successive_halving", "hyperband"] = "none"
    min_epochs: int = Field(1, ge=1, description="pruners: epochs every run gets before it can be stopped")
    reduction_factor: int = Field(3, ge=2, description="successive_halving and hyperband: 1/η of the runs go on at each rung")


class StudyRecipe(Recipe):
    study: StudyConfig


class SweepRecipe(Recipe):
    search: SearchConfig


# ---------------------------------------------------------------------------------------------
# loading


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=0.01"`` -> ``(["optim", "lr"], 0.01)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"override '{text}' is not of the form section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def set_dotted(tree: dict, keys: list[str], value: Any) -> None:
    """``tree[k1][k2]… = value``, creating sections on the way; ``None`` restores the default
    (which turns optional blocks off)."""
    node = tree
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if not isinstance(child, dict):
            if child is not None:
                raise UserError(f"override of '{'.'.join(keys)}': '{'.'.join(keys[: depth + 1])}' is not a section")
            child = node[key] = {}
        node = child
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    for text in overrides:
        set_dotted(tree, *parse_override(text))
    return tree


def validate(tree: Any, origin: str, schema: type[BaseModel] = Recipe) -> BaseModel:
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise UserError(f"{origin}: a recipe must be a mapping of sections, got {type(tree).__name__}")
    try:
        return schema.model_validate(tree)
    except ValidationError as exc:
        raise UserError(f"{origin}: {describe(exc.errors(), schema)}") from None


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: recipe file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the recipe as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None


def read_recipe_tree(path: str | Path, _within: tuple = ()) -> Any:
    """A recipe file's tree; one that names ``base: other.yaml`` (relative to itself) is that
    recipe with this file's keys laid over it, section by section (a section that changes its
    ``name`` replaces the base's whole)."""
    tree = read_yaml(path)
    if not isinstance(tree, dict) or "base" not in tree:
        return tree
    base = tree.pop("base")
    if not isinstance(base, str):
        raise UserError(f"{path}: base: must be the path of a recipe file, relative to this one")
    base_path = Path(path).parent / base
    if not base_path.is_file():
        raise UserError(f"{path}: base: {base} is not a recipe file ({base_path} not found)")
    if base_path.resolve() in _within:
        raise UserError(f"{path}: base: {base} leads back to itself")
    under = read_recipe_tree(base_path, _within + (Path(path).resolve(),))
    if not isinstance(under, dict):
        raise UserError(f"{base_path}: a recipe must be a mapping of sections")
    return laid_over(under, tree)


def laid_over(under: dict, over: dict) -> dict:
    merged = copy.deepcopy(under)
    for key, value in over.items():
        below = merged.get(key)
        same_kind = isinstance(value, dict) and isinstance(below, dict) and value.get("name", below.get("name")) == below.get("name")
        merged[key] = laid_over(below, value) if same_kind else copy.deepcopy(value)
    return merged


def upgrade(tree: dict) -> dict:
    """A recipe that reglab saved (a run's recipe.yaml, a study's study.yaml), in today's keys:
    renamed keys moved, and the keys that do not apply to a section's ``name`` dropped (earlier
    versions saved every key for every name). Recipes a user writes are never upgraded: a key
    that does not apply there is an error."""
    tree = copy.deepcopy(tree)
    for old, new in RENAMED.items():
        *parents, leaf = old.split(".")
        node = tree
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            set_dotted(tree, new.split("."), node.pop(leaf))
    for key, field in Recipe.model_fields.items():
        members, value = tags_of(field.annotation), tree.get(key)
        if members and isinstance(value, dict):
            schema = members.get(value.get("name", field.default.name))
            if schema is not None:
                tree[key] = {k: v for k, v in value.items() if k in schema.model_fields}
    return tree


def load_recipe(path: str | Path | None, overrides: list[str] = (), saved: bool = False) -> Recipe:
    """Read a recipe file (or the defaults when ``path`` is None) and apply the overrides;
    ``saved``: a file reglab wrote, upgraded to today's keys first."""
    tree = read_recipe_tree(path) if path is not None else {}
    if tree is not None and not isinstance(tree, dict):
        raise UserError(f"{path}: a recipe must be a mapping of sections")
    tree = apply_overrides(upgrade(tree) if saved and tree else tree or {}, list(overrides))
    return validate(tree, str(path) if path is not None else "recipe")


def load_plan(path: str | Path, overrides: list[str], saved: bool, schema: type[Recipe], key: str) -> tuple[Recipe, dict]:
    """A recipe with a plan section (``study`` or ``search``) and the base recipe's tree without
    it. Overrides apply to the base recipe; ``saved`` as for ``load_recipe``."""
    tree = read_recipe_tree(path)
    if not isinstance(tree, dict):
        raise UserError(f"{path}: a {key} recipe must be a mapping of sections")
    tree = apply_overrides(upgrade(tree) if saved else tree, list(overrides))
    plan = validate(tree, str(path), schema)
    return plan, {name: value for name, value in tree.items() if name != key}


def with_overrides(base: dict, overrides: dict[str, Any], origin: str, saved: bool = False) -> Recipe:
    """The base recipe's tree with dotted ``key: value`` overrides (``None``: the default) set,
    validated. ``saved``: the base is a resolved recipe that reglab wrote, holding every key of
    each section, so the keys that do not apply once an override changes a section's ``name``
    are dropped (a user's own recipe never has them dropped: they are errors there)."""
    tree = copy.deepcopy(base)
    for key, value in overrides.items():
        set_dotted(tree, key.split("."), copy.deepcopy(value))
    return validate(upgrade(tree) if saved else tree, origin)


def load_study_recipe(path: str | Path, overrides: list[str] = (), saved: bool = False) -> tuple[StudyRecipe, dict[str, Recipe]]:
    """A study file: a recipe plus a ``study`` section. Returns the study and each arm's recipe
    (before its seed is set)."""
    study, base = load_plan(path, overrides, saved, StudyRecipe, "study")
    if study.study.split_follows_seed is None:  # saved by a version whose seeds all shared split 0: kept so
        follows = not saved and not sets_split_seed(base.get("data"), study.study.arms.values())
        study = study.model_copy(update={"study": study.study.model_copy(update={"split_follows_seed": follows})})
    arms = {arm: with_overrides(base, arm_overrides, f"{path}: study.arms.{arm}", saved) for arm, arm_overrides in study.study.arms.items()}
    return study, arms


def sets_split_seed(data: Any, arms) -> bool:
    """Whether a study's own recipe pins ``data.split_seed``, in its base or in an arm."""
    def names(section: Any) -> bool:
        return isinstance(section, dict) and "split_seed" in section

    return names(data) or any(key == "data.split_seed" or (key == "data" and names(value)) for arm in arms for key, value in arm.items())


def save_recipe(recipe: Recipe, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False), encoding="utf-8")
    tmp.replace(path)
