"""reglab: controlled regularization studies for image and audio classifiers.

From Python: ``reglab.train``, ``reglab.evaluate``, ``reglab.study``, ``reglab.load_run`` and
``reglab.load`` (``api.py``, imported on first use, so that ``import reglab`` and the command line
start fast); a model, data source, loss or batch operation of your own is registered by name with
``reglab.register_model`` and its kin (``plugins.py``), or named in a recipe as
``package.module:attribute``."""

from .plugins import BATCH_OPS, DATA_SOURCES, LOSSES, MODELS
from .version import __version__

register_model = MODELS.register
register_data = DATA_SOURCES.register
register_loss = LOSSES.register
register_batch_op = BATCH_OPS.register
API = ("evaluate", "load", "load_run", "study", "train")


def __getattr__(name: str):
    if name in API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'reglab' has no attribute {name!r}")


__all__ = ["__version__", *API, "register_batch_op", "register_data", "register_loss", "register_model"]
