"""The sections of how a run trains: ``optim`` (one schema per optimizer ``name``), ``schedule``
(one per schedule) and ``train``."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from .sections import Monitor, MonitorMode, Section, tagged_union


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
    lr_multipliers: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        {}, description="layer-wise learning rates: parameter name prefix -> factor on lr (the longest matching prefix wins)")


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
        "auto", description="bfloat16 autocast: auto (on CUDA, and on CPUs with bfloat16 instructions for models shown to learn "
        "as well there: device.concrete_amp), bf16 (on CUDA and on CPUs with bfloat16 instructions), off"
    )
    compile: Union[Literal["auto"], bool] = Field(
        "auto", description="torch.compile the training forward and backward: fuses batch norm, activations and residual adds "
        "(here InstruNet 1.5x, ResNet-18 1.1x, AlexNet-like 1.0x); the first epoch also compiles, 5-50 s, cached on disk after; "
        "auto: where measured to pay for that (device.concrete_compile)"
    )  # fmt: skip
    ema_decay: Optional[float] = Field(None, gt=0.0, lt=1.0, description="validate and keep an exponential moving average of the weights")
    swa: Optional[SWAConfig] = Field(None, description="stochastic weight averaging (Izmailov et al. 2018)")
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    log: list[Literal["tensorboard", "mlflow"]] = Field([], description="live tracking: per-epoch values, the recipe and the results "
                                                        "(REGLAB_LOG=tensorboard,mlflow adds them to every run)")  # fmt: skip
    tracking_uri: Optional[str] = Field(None, description="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)")

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
