"""The IRMAS layouts (Bosch et al. 2012). Training: one folder per instrument code, files named
like ``[cel][cla]0001__1.wav`` whose first bracket is the predominant instrument (the folder name
is used when a file has no bracket). Testing: every audio file beside a ``.txt`` listing each
instrument present, one per line — a multi-label target."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import UserError
from .audio import is_audio
from .folders import existing_dir, pick_classes

FIRST_BRACKET = re.compile(r"^\[([^\]]+)\]")


def label_from_name(path: Path, folder: str) -> str:
    """``[cel][cla]0001__1.wav`` → ``cel``; a name without brackets → its folder."""
    match = FIRST_BRACKET.match(path.name)
    return match.group(1) if match else folder


def list_training(root, wanted=None) -> tuple[list[Path], list[int], list[str]]:
    root = existing_dir(root, "IRMAS training folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise UserError(f"{root}: no instrument sub-folders found")
    classes = pick_classes([f.name for f in folders], wanted, root)
    index = {name: i for i, name in enumerate(classes)}
    files, labels = [], []
    for folder in folders:
        if folder.name not in index:
            continue
        found = sorted(p for p in folder.iterdir() if is_audio(p))
        if not found:
            raise UserError(f"{folder}: instrument folder has no audio files")
        for file in found:
            label = label_from_name(file, folder.name)
            if label not in index:
                raise UserError(f"{file}: instrument '{label}' is not one of {', '.join(classes)}")
            files.append(file)
            labels.append(index[label])
    return files, labels, classes


def list_testing(root, classes: list[str]) -> tuple[list[Path], torch.Tensor]:
    """Audio files and their multi-hot targets from the ``.txt`` beside each."""
    root = existing_dir(root, "IRMAS testing folder")
    files = sorted(p for p in root.iterdir() if is_audio(p))
    if not files:
        raise UserError(f"{root}: no audio files found")
    index = {name: i for i, name in enumerate(classes)}
    targets = torch.zeros(len(files), len(classes))
    for row, file in enumerate(files):
        notes = file.with_suffix(".txt")
        if not notes.is_file():
            raise UserError(f"{file}: no {notes.name} beside it listing its instruments")
        try:
            names = notes.read_text(encoding="utf-8").split()
        except UnicodeDecodeError:
            raise UserError(f"{notes}: not UTF-8 text") from None
        if not names:
            raise UserError(f"{notes}: lists no instrument; every excerpt needs at least one (one code per line)")
        for name in names:
            if name not in index:
                raise UserError(f"{notes}: unknown instrument '{name}' (known: {', '.join(classes)})")
            targets[row, index[name]] = 1.0
    return files, targets
