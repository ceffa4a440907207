"""reglab: controlled regularization studies for image and audio classifiers.

From Python: ``reglab.train``, ``reglab.evaluate``, ``reglab.study`` and ``reglab.load_run``
(``api.py``); a model, data source, loss or batch operation of your own is registered by name with
``reglab.register_model`` and its kin (``plugins.py``), or named in a recipe as
``package.module:attribute``."""

from .version import __version__
from .plugins import BATCH_OPS, DATA_SOURCES, LOSSES, MODELS
from .api import evaluate, load, load_run, study, train

register_model = MODELS.register
register_data = DATA_SOURCES.register
register_loss = LOSSES.register
register_batch_op = BATCH_OPS.register

__all__ = ["__version__", "evaluate", "load", "load_run", "register_batch_op", "register_data", "register_loss", "register_model",
           "study", "train"]  # fmt: skip
