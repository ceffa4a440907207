"""An on-disk cache of computed features, keyed by every file's path, size and modification time
plus the front-end parameters, so a second run on the same data decodes and transforms nothing."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Optional

import torch

from ..errors import first_line


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

    def get(self, key: str, fields: tuple[str, ...] = ()) -> Optional[dict]:
        """The stored entry, or None when there is none; a damaged entry (derived data) is
        reported on stderr and treated as missing, so it is computed and written again."""
        file = self.directory / f"{key}.pt" if self.directory else None
        if file is None or not file.is_file():
            return None
        try:
            entry = torch.load(file, weights_only=True)
        except Exception as exc:  # truncated, empty or foreign file
            entry, reason = None, first_line(exc)
        else:
            missing = [name for name in fields if not isinstance(entry, dict) or name not in entry]
            reason = f"lacks {', '.join(missing)}" if missing else None
        if reason is not None:
            print(f"reglab: warning: {file}: damaged feature-cache entry ({reason}); computing it again", file=sys.stderr)
            return None
        return entry

    def put(self, key: str, payload: dict) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{key}.{os.getpid()}.tmp"  # workers filling the same entry at once each write their own
        torch.save(payload, tmp)
        os.replace(tmp, self.directory / f"{key}.pt")
