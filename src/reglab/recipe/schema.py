"""The run schema: a recipe has the sections ``data``, ``model``, ``loss``, ``optim``, ``schedule``,
``augment`` (``augment.py``), ``train`` and ``evaluate``; every key has a default and unknown keys
are refused. ``model``, ``loss``, ``optim`` and ``schedule`` each take the keys of their ``name``
only (one schema per name)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..plugins import DATA_SOURCES, LOSSES, MODELS, check_arguments
from .augment import AugmentConfig
from .sections import PluginSection, Section, tagged_union
from .training import NoScheduleConfig, OptimConfig, ScheduleConfig, SGDConfig, TrainConfig


class FrontendConfig(Section):
    """Log-mel front end for audio sources."""

    n_fft: int = Field(1024, ge=16)
    hop_length: int = Field(320, ge=1)
    n_mels: int = Field(96, ge=8)
    fmin: float = Field(0.0, ge=0.0)
    fmax: Optional[float] = Field(None, gt=0.0, description="null: half the sample rate")
    log_floor: float = Field(1e-6, gt=0.0)
    resize: Optional[int] = Field(None, gt=0, description="resize each spectrogram to this square size")


class RoomsConfig(Section):
    """Audio: every training clip also heard in ``copies`` simulated rooms (``data/rooms.py``); a
    visit takes one of them with probability ``p``."""

    copies: int = Field(4, ge=1, le=32, description="rooms each training clip is rendered in, drawn once from seed")
    p: float = Field(0.5, ge=0.0, le=1.0, description="share of visits that take one of the clip's rooms instead of the dry clip")
    rt60: tuple[float, float] = Field((0.2, 1.2), description="seconds for a room's tail to decay by 60 dB, drawn from this range")
    drr_db: tuple[float, float] = Field((0.0, 12.0), description="direct-to-reverberant energy ratio in dB, drawn from this range")
    eq_db: float = Field(0.0, ge=0.0, le=24.0, description="each copy also through three peaking filters of gains U(-eq_db, eq_db) dB; 0: none")
    steady: bool = Field(False, description="the response wraps around, as if the clip had been playing in the room before it starts")
    seed: int = Field(0, description="draws the rooms (the same for every run of a recipe, whatever its train.seed)")
    consistency: float = Field(0.0, ge=0.0, description="each visit also heard in one of the clip's rooms beside it in the batch (the same mixtures, gains and masks; a batch of batch_size visits holds twice as many rows), and this weight times the Jensen-Shannon divergence of the two hearings' predictions (AugMix's consistency, Hendrycks et al. 2020) added to the loss as a penalty (train_penalty); 0: off")

    @model_validator(mode="after")
    def _ranges(self):
        if not 0 < self.rt60[0] <= self.rt60[1] <= 5:
            raise ValueError("rt60 must be [low, high] seconds with 0 < low <= high <= 5")
        if self.drr_db[0] > self.drr_db[1]:
            raise ValueError("drr_db must be [low, high] with low <= high")
        return self


DATA_SOURCE_NAMES = ("digits", "image_folder", "test_folder", "cifar", "tiny_imagenet", "irmas", "irmas_test")


class DataConfig(Section):
    source: Literal[DATA_SOURCE_NAMES] = "digits"
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
    cache_dir: Optional[str] = Field(".reglab-cache", description="cache of decoded images and audio features, so the next run reads one file (null: off)")
    rooms: Optional[RoomsConfig] = Field(None, description="audio: training clips also heard in simulated rooms")

    @property
    def is_audio(self) -> bool:
        """Recordings (log-mel features), not images."""
        return self.source in ("irmas", "irmas_test")

    @property
    def consistency(self) -> float:
        """The weight of the consistency term between a visit and its hearing in a room (0: off)."""
        return self.rooms.consistency if self.rooms else 0.0

    def frame_rate(self, input_shape: tuple[int, int, int]) -> float:
        """Frames per second of log-mel inputs ``(C, mels, frames)`` (a clip's frames over its length,
        so that it holds for resized features too)."""
        return input_shape[2] / self.clip_seconds

    @model_validator(mode="after")
    def _path_needed(self):
        if self.source != "digits" and not self.path:
            raise ValueError(f"data.path is required for source '{self.source}'")
        if isinstance(self.classes, int) and self.classes < 2:
            raise ValueError("data.classes must keep at least 2 classes")
        if self.rooms is not None and self.source != "irmas":
            raise ValueError(f"data.rooms renders training recordings in rooms; source '{self.source}' has none (use irmas)")
        return self


class PluginDataConfig(PluginSection):
    """Data from the user's ``load(split, **kwargs)`` (a registered name or ``package.module:function``):
    ``(x, y, classes)`` arrays or a sized ``Dataset`` of ``(x, y)`` pairs; ``data/plugin.py``."""

    source: str
    classes: Union[None, int, list[str]] = Field(None, description="keep only these classes (or the first N by name)")
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = 0
    path: ClassVar[None] = None
    labels: ClassVar[None] = None
    is_audio: ClassVar[bool] = False
    consistency: ClassVar[float] = 0.0

    @model_validator(mode="after")
    def _callable(self):
        check_arguments(DATA_SOURCES.resolve(self.source, "data.source"), self.kwargs, "data", self.source, supplied=("split",))
        return self


DataSection = tagged_union("digits", {**{name: DataConfig for name in DATA_SOURCE_NAMES}, "plugin": PluginDataConfig}, key="source", plugins=DATA_SOURCES)


class DropoutConfig(Section):
    rate: float = Field(0.0, ge=0.0, lt=1.0)
    where: Literal["head", "blocks"] = "head"
    kind: Literal["standard", "maxdropout"] = Field("standard", description="random units, or the most active ones (MaxDropout)")


class InitConfig(Section):
    """Start from saved weights (fine-tuning): a ``state_dict`` file, read without running code."""

    path: str = Field(..., description="a .pt file holding a state_dict (a run's best.pt, or exported weights)")
    strict: bool = Field(False, description="refuse weights whose names or shapes differ from the model's (else: listed, skipped)")
    skip: list[str] = Field([], description="name prefixes not loaded (e.g. the classifier head when the classes differ)")


# --- model: one schema per architecture ---------------------------------------------------------
class ModelCommon(Section):
    input_norm: Literal["dataset", "per_band", "per_image", "band_mean", "pcen"] = Field(
        "dataset", description="standardize by training-set statistics per channel or per frequency band, or per image; log-mel features only: band_mean, each band less its own mean over time first (removes a fixed equalization or level); pcen, per-channel energy normalization first (Wang et al. 2017)"
    )
    init: Optional[InitConfig] = Field(None, description="initial weights from a file (fine-tuning)")
    freeze: list[str] = Field([], description="parameter name prefixes kept fixed during training")


class ModelBase(ModelCommon):
    dropout: DropoutConfig = DropoutConfig()

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


class DropBlockConfig(Section):
    p: float = Field(0.1, gt=0.0, lt=1.0, description="share of the units dropped")
    block_size: int = Field(5, ge=1, description="side of the dropped squares, in feature-map cells")


class ResNet18Config(ConvModelConfig):
    name: Literal["resnet18"] = "resnet18"
    stem: Literal["small", "standard"] = Field("small", description="3x3/1 stem for small images, or 7x7/2 + max-pool")
    drop_path: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth: the last residual branch is dropped with this "
                             "probability, earlier ones linearly less (Huang et al. 2016)")  # fmt: skip
    dropblock: Optional[DropBlockConfig] = Field(None, description="DropBlock after the third and fourth stages (Ghiasi et al. 2018)")


class EfficientNetB0Config(ConvModelConfig):
    name: Literal["efficientnet_b0"] = "efficientnet_b0"
    depth: float = Field(1.0, gt=0.0, description="multiplier on every stage's repeats (compound scaling)")
    stem: Literal["small", "standard"] = Field("small", description="3x3/1 stem for small images, or the paper's 3x3/2")
    drop_path: float = Field(0.2, ge=0.0, lt=1.0, description="stochastic depth of the last block, earlier ones linearly less")


class InstruNetConfig(ConvModelConfig):
    name: Literal["instrunet"] = "instrunet"


class PluginModelConfig(PluginSection, ModelCommon):
    """A model of the user's: ``build(input_shape, n_classes, **kwargs) -> nn.Module`` returning logits
    (a registered name or ``package.module:function``); reglab wraps it as it wraps its own."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    name: str
    channels_last: bool = Field(True, description="convolutions on NHWC tensors")

    @model_validator(mode="after")
    def _callable(self):
        check_arguments(MODELS.resolve(self.name, "model.name"), self.kwargs, "model", self.name, supplied=("input_shape", "n_classes"))
        return self


ModelConfig = tagged_union(
    "resnet18", {"linear": LinearModelConfig, "alexnet_like": AlexNetLikeConfig, "resnet18": ResNet18Config, "instrunet": InstruNetConfig,
                 "efficientnet_b0": EfficientNetB0Config, "plugin": PluginModelConfig}, plugins=MODELS,  # fmt: skip
)


# --- loss ----------------------------------------------------------------------------------------
class LossBase(Section):
    class_weights: Union[Literal["none", "inverse_frequency", "effective_number"], list[float]] = "none"
    beta: float = Field(0.999, ge=0.0, lt=1.0, description="effective_number weights: (1 − β)/(1 − β^n)")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)

    @property
    def sigmoid(self) -> bool:
        """Scores are per-class sigmoids (else a softmax)."""
        return False


class CrossEntropyConfig(LossBase):
    name: Literal["cross_entropy"] = "cross_entropy"
    logit_adjustment: float = Field(0.0, ge=0.0, description="τ of logit-adjusted cross-entropy (0: off)")


class FocalConfig(CrossEntropyConfig):
    name: Literal["focal"] = "focal"
    alpha: float = Field(1.0, gt=0.0, description="focal loss weight α")
    gamma: float = Field(2.0, ge=0.0, description="focal loss focusing γ")


class BinaryLossConfig(LossBase):
    name: Literal["ovr_bce", "bce"] = "bce"

    @property
    def sigmoid(self) -> bool:
        return True


class PluginLossConfig(PluginSection, LossBase):
    """A loss of the user's: ``make(**kwargs) -> module(logits, targets)`` over soft or multi-hot
    targets; class weights reach it as ``weight``, label smoothing is applied to its targets."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    name: str
    scores: Literal["softmax", "sigmoid"] = Field("softmax", description="how its logits become probabilities (sigmoid: multi-label)")

    @property
    def sigmoid(self) -> bool:
        return self.scores == "sigmoid"

    @model_validator(mode="after")
    def _callable(self):
        target = LOSSES.resolve(self.name, "loss.name")
        weighted = self.class_weights != "none"
        if weighted:
            try:
                check_arguments(target, {"weight": None}, "loss", self.name, supplied=tuple(self.kwargs))
            except ValueError:
                raise ValueError(f"loss.class_weights: {self.name} takes no argument 'weight' to receive them") from None
        check_arguments(target, self.kwargs, "loss", self.name, supplied=("weight",) if weighted else ())
        return self


LossConfig = tagged_union(
    "cross_entropy", {"cross_entropy": CrossEntropyConfig, "focal": FocalConfig, "ovr_bce": BinaryLossConfig, "bce": BinaryLossConfig,
                      "plugin": PluginLossConfig}, plugins=LOSSES,  # fmt: skip
)


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
    plugin_dirs: list[str] = Field([], description="folders searched (after sys.path) for the modules of references and imports; "
                             "default: the recipe file's own folder")
    imports: list[str] = Field([], description="modules imported before the recipe is read, for the names they register")
    data: DataSection = DataConfig()
    model: ModelConfig = ResNet18Config()
    loss: LossConfig = CrossEntropyConfig()
    optim: OptimConfig = SGDConfig()
    schedule: ScheduleConfig = NoScheduleConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @property
    def polyphonic(self) -> bool:
        """Judged on mixtures: trained on them, or with thresholds tuned on them."""
        return self.augment.mixtures is not None or self.evaluate.threshold == "tuned"

    @property
    def multilabel(self) -> bool:
        """Predicts every class present (per-class sigmoid scores against thresholds), not one class."""
        return self.loss.name == "bce" or self.polyphonic

    def to_dict(self) -> dict:
        """The recipe as plain data, each section's ``name`` (what picks its schema) first."""
        tree = self.model_dump(mode="json")
        for key in ("plugin_dirs", "imports"):
            if not tree[key]:
                del tree[key]
        for key, value in tree.items():
            if isinstance(value, dict) and "name" in value:
                tree[key] = {"name": value["name"], **{k: v for k, v in value.items() if k != "name"}}
        return tree


def section(kind: str, **values) -> Section:
    """One section of a recipe on its own, as the recipe would read it: ``section("loss", name="focal")``."""
    return getattr(Recipe.model_validate({kind: values}), kind)
