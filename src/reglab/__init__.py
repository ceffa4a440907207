"""reglab: controlled regularization studies for image and audio classifiers."""

__version__ = "0.1.0"
