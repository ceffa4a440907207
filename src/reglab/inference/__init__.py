"""Predictions from a model: inference without gradients (``predictor``), window aggregation and
thresholds (``decisions``), calibration after training (``calibration``, ``logit_adjustment``), a
trained run scored on labelled data or predicting images (``evaluate``) and recordings (``recordings``)."""
