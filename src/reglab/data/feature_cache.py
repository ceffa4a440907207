"""An on-disk cache of computed features, keyed by every file's path, size and modification time
plus the front-end parameters, so a second run on the same data decodes and transforms nothing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import torch


def cache_key(files: list[Path], params: dict) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


class FeatureCache:
    """``get``/``put`` of a dict of tensors and lists; ``directory=None`` disables caching."""

    def __init__(self, directory: Optional[str | Path]):
        self.directory = Path(directory) if directory else None

    def get(self, key: str) -> Optional[dict]:
        if self.directory is None or not (self.directory / f"{key}.pt").is_file():
            return None
        return torch.load(self.directory / f"{key}.pt", weights_only=True)

    def put(self, key: str, payload: dict) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{key}.{os.getpid()}.tmp"  # workers filling the same entry at once each write their own
        torch.save(payload, tmp)
        os.replace(tmp, self.directory / f"{key}.pt")
