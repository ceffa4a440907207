"""The ``augment`` section: batch augmentation, mixing and audio-condition operations, each block
off (null) unless given; see ``reglab/augment/``."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from ..plugins import BATCH_OPS, check_arguments
from .sections import PluginSection, Section

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


class ImageOpsConfig(Section):
    """The image operations: a recipe's ``augment`` has them for every sample, ``augment.minority.ops`` for rare classes'."""

    hflip: float = Field(0.0, ge=0.0, le=1.0, description="probability of a horizontal flip")
    resized_crop: Optional[ResizedCropConfig] = None
    translate: Optional[TranslateConfig] = None
    rotation: Optional[RotationConfig] = None
    color_jitter: Optional[ColorJitterConfig] = None
    erasing: Optional[ErasingConfig] = None


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


class ShareConfig(Section):
    """An operation that acts on a random share ``p`` of a batch's samples."""

    p: float = Field(0.5, ge=0.0, le=1.0, description="share of the batch's samples it acts on")


class SpecAugmentConfig(Section):
    freq_masks: int = Field(2, ge=0)
    freq_width: int = Field(12, ge=0, description="widest frequency mask, in mel bins")
    time_masks: int = Field(2, ge=0)
    time_width: int = Field(20, ge=0, description="widest time mask, in frames")


class FilterAugmentConfig(ShareConfig):
    """Random equalization of log-mel features (Nam et al. 2022, FilterAugment); ``augment/filter_augment.py``."""

    db: float = Field(6.0, ge=0.0, description="band-edge gains are U(−db, db) dB")
    bands: int = Field(4, ge=1, description="bands the mel axis is cut into")


class FreqMixStyleConfig(ShareConfig):
    """Band statistics blended between spectrograms (Schmid et al. 2022, Freq-MixStyle); ``augment/freq_mixstyle.py``."""

    alpha: float = Field(0.3, gt=0.0, description="the blend's weight on a spectrogram's own statistics is Beta(alpha, alpha)")


class PitchShiftConfig(ShareConfig):
    """Small pitch shifts along the mel axis (Salamon & Bello 2017; McFee et al. 2015)."""

    semitones: float = Field(1.0, gt=0.0, le=12.0, description="shifts are U(−semitones, semitones)")


class ReverbConfig(ShareConfig):
    """Room reverberation of the features: an exponential tail of ``rt60`` seconds at a direct-to-
    reverberant ratio; ``augment/acoustics.py``."""

    rt60: Range = Field((0.2, 1.0), description="seconds for the tail to decay by 60 dB, drawn from this range")
    drr_db: Range = Field((0.0, 12.0), description="direct-to-reverberant power ratio in dB, drawn from this range")

    @field_validator("rt60")
    @classmethod
    def _positive_increasing(cls, value):
        if not 0 < value[0] <= value[1]:
            raise ValueError("must be [low, high] seconds with 0 < low <= high")
        return value


class CompressionConfig(ShareConfig):
    """Dynamic range compression of the features at a random ratio."""

    max_ratio: float = Field(4.0, gt=1.0, description="compression ratios are U(1, max_ratio)")


class MixturesConfig(ShareConfig):
    """Polyphonic examples from monophonic clips (after Kratimenos et al. 2020); ``data/mixing.py``."""

    max_sources: int = Field(3, ge=2, description="clips in a mixture, at most")
    gain_db: float = Field(6.0, ge=0.0, description="each added clip's gain is U(−gain_db, gain_db)")


class MinorityConfig(Section):
    """Class-conditional augmentation for long-tailed data (the painter study's rule): extra
    operations for the samples of classes with fewer than ``below`` training samples."""

    below: int = Field(..., ge=1, description="classes with fewer training samples than this are the minority")
    ops: ImageOpsConfig


class RandAugmentConfig(Section):
    """RandAugment (Cubuk et al. 2020): ``n`` operations in turn, each drawn per sample, at magnitude ``m`` of 30."""

    n: int = Field(2, ge=1, le=4, description="operations applied in turn")
    m: int = Field(9, ge=0, le=30, description="magnitude of every operation, out of 30")


class UserOpConfig(PluginSection):
    """A batch operation of the user's: ``make(**kwargs)`` (plus ``context``, a ``BatchContext``, when
    it takes one) returns ``op(x, targets, is_extra) -> (x, targets)``, run on every training batch."""

    name: str
    at: Literal["before_mix", "after_mix"] = Field("before_mix", description="after reglab's own operations, before or after mixup/CutMix")

    @model_validator(mode="after")
    def _callable(self):
        check_arguments(BATCH_OPS.resolve(self.name, "augment.ops.name"), self.kwargs, "augment.ops", self.name, supplied=("context",))
        return self


class AugmentConfig(ImageOpsConfig):
    """Training-time augmentation, applied to whole batches on the device; evaluation data is
    never augmented. A block left out (null) is off. (The order operations run in is
    ``augment.BATCH_OPS``'s.)"""

    vflip: float = Field(0.0, ge=0.0, le=1.0, description="probability of a vertical flip")
    minority: Optional[MinorityConfig] = None
    randaugment: Optional[RandAugmentConfig] = None
    trivialaugment: bool = Field(False, description="TrivialAugment (Müller & Hutter 2021): one operation a sample at a random magnitude")
    mix: Optional[MixConfig] = None
    multicrop: Optional[MulticropConfig] = None
    specaugment: Optional[SpecAugmentConfig] = None
    filter_augment: Optional[FilterAugmentConfig] = None
    pitch_shift: Optional[PitchShiftConfig] = None
    reverb: Optional[ReverbConfig] = None
    compression: Optional[CompressionConfig] = None
    freq_mixstyle: Optional[FreqMixStyleConfig] = None
    random_gain_db: float = Field(0.0, ge=0.0, description="spectrograms: random gain up to ± this many dB")
    time_shift: float = Field(0.0, ge=0.0, lt=1.0, description="spectrograms: random roll up to this fraction")
    mixtures: Optional[MixturesConfig] = None
    ops: list[UserOpConfig] = Field([], description="the user's batch operations (name: package.module:make, or a registered name)")
