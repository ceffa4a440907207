"""The run schema: a recipe has the sections ``data``, ``model``, ``loss``, ``optim``, ``schedule``,
``augment`` (``augment.py``), ``train`` and ``evaluate``; every key has a default and unknown keys
are refused. ``model``, ``loss``, ``optim`` and ``schedule`` each take the keys of their ``name``
only (one schema per name)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from .augment import AugmentConfig
from .sections import Monitor, MonitorMode, Section, tagged_union

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

    @property
    def is_audio(self) -> bool:
        """Recordings (log-mel features), not images."""
        return self.source in ("irmas", "irmas_test")

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
    kind: Literal["standard", "maxdropout"] = Field("standard", description="random units, or the most active ones (MaxDropout)")


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


ModelConfig = tagged_union(
    "resnet18", {"linear": LinearModelConfig, "alexnet_like": AlexNetLikeConfig, "resnet18": ResNet18Config, "instrunet": InstruNetConfig,
                 "efficientnet_b0": EfficientNetB0Config},  # fmt: skip
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
class SAMConfig(Section):
    rho: float = Field(0.05, gt=0.0, description="radius of the weight perturbation (ASAM: around 2.0)")
    adaptive: bool = Field(False, description="ASAM (Kwon et al. 2021): the radius scaled by each weight's size")


class OptimBase(Section):
    lr: float = Field(0.01, gt=0.0)
    l2: float = Field(0.0, ge=0.0, description="Keras-style penalty: λ·Σw² added to the loss")
    weight_decay: float = Field(0.0, ge=0.0, description="decoupled decay: w ← w·(1 − lr·wd) each step")
    l1: float = Field(0.0, ge=0.0, description="penalty λ·Σ|w| added to the loss (sparse weights; the penalize kinds)")
    penalize: list[Literal["conv", "linear", "norm", "bias"]] = Field(
        ["conv", "linear"], description="which parameters l2, l1 and weight_decay touch"
    )
    clip_grad_norm: Optional[float] = Field(None, gt=0.0, description="rescale the gradient when its global L2 norm exceeds this")
    sam: Optional[SAMConfig] = Field(None, description="sharpness-aware minimization around the optimizer (two passes a step)")
    max_norm: Optional[float] = Field(None, gt=0.0, description="after each step, project every conv/dense unit's incoming weights "
                                      "to L2 norm ≤ this (Srivastava et al. 2014)")  # fmt: skip


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


class SWAConfig(Section):
    start_epoch: int = Field(..., ge=1, description="the first epoch whose weights join the average")
    lr: float = Field(..., gt=0.0, description="the constant learning rate from start_epoch on")


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
    swa: Optional[SWAConfig] = Field(None, description="stochastic weight averaging (Izmailov et al. 2018)")
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()

    @model_validator(mode="after")
    def _one_final_model(self) -> "TrainConfig":
        if self.swa is not None:
            if self.ema_decay is not None:
                raise ValueError("train.swa and train.ema_decay each average the weights: keep one")
            if self.early_stopping.restore_best:
                raise ValueError("train.swa makes the average the final model; train.early_stopping.restore_best would replace it")
            if self.swa.start_epoch > self.epochs:
                raise ValueError(f"train.swa.start_epoch {self.swa.start_epoch} is beyond train.epochs {self.epochs}")
        return self

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_switch(cls, value: Any) -> Any:
        """``true``/``false`` (recipes before bf16 on CPU) mean auto/off."""
        return {True: "auto", False: "off"}.get(value, value) if isinstance(value, bool) else value


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
        for key, value in tree.items():
            if isinstance(value, dict) and "name" in value:
                tree[key] = {"name": value["name"], **{k: v for k, v in value.items() if k != "name"}}
        return tree


def section(kind: str, **values) -> Section:
    """One section of a recipe on its own, as the recipe would read it: ``section("loss", name="focal")``."""
    return getattr(Recipe.model_validate({kind: values}), kind)
