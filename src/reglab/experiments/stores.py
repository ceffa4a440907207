"""The artifact stores a plan may name with ``--store``: a folder every machine reaches (Optuna's
``FileSystemArtifactStore``; a network mount or a synced folder), or ``s3://BUCKET[/PREFIX]`` on
an S3-compatible object store (Optuna's ``Boto3ArtifactStore``; the optional extra ``reglab[s3]``;
endpoint and credentials from boto3's usual places: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``~/.aws``). Each is checked writable before a plan names it."""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path
from typing import BinaryIO

from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound

from ..errors import UserError, first_line

try:
    from botocore.exceptions import BotoCoreError, ClientError

    S3_ERRORS: tuple = (BotoCoreError, ClientError)
except ImportError:  # no S3 extra: no S3 errors to expect
    S3_ERRORS = ()
STORE_ERRORS = (OSError, ArtifactNotFound, *S3_ERRORS)  # what reading or writing a store may raise
PROBE = ".reglab-probe"


class Prefixed:
    """A store's artifacts under ``prefix/`` (a bucket shared with other things)."""

    def __init__(self, store, prefix: str):
        self.store, self.prefix = store, prefix.strip("/") + "/"

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.store.open_reader(self.prefix + artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.store.write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(self.prefix + artifact_id)


def is_s3(path: str) -> bool:
    return str(path).startswith("s3://")


def kept_as(path: str) -> str:
    """How the storage records a store: a bucket URL as given, a folder as an absolute path."""
    return str(path) if is_s3(path) else str(Path(path).resolve())


def store_at(path: str, option: str = "--store"):
    """The artifact store at ``path``, checked writable (one line naming ``option`` if not)."""
    if is_s3(path):
        return s3_store(str(path), option)
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{option} {path}: not a folder (create it, or mount the shared store there)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: not writable")
    return FileSystemArtifactStore(str(folder.resolve()))


@functools.lru_cache(maxsize=None)  # one client and one probe a bucket and process: a worker opens its store at every trial
def s3_store(url: str, option: str):
    try:
        import boto3
        from optuna.artifacts import Boto3ArtifactStore
    except ImportError:
        raise UserError(f"{option} {url}: an S3 store needs boto3 (pip install 'reglab[s3]')") from None
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise UserError(f"{option} {url}: name a bucket (s3://BUCKET or s3://BUCKET/PREFIX)")
    store = Boto3ArtifactStore(bucket, client=boto3.client("s3"))
    store = Prefixed(store, prefix) if prefix.strip("/") else store
    try:  # one small object written and removed: the bucket exists and these credentials may write to it
        store.write(PROBE, io.BytesIO(b"reglab"))
        store.remove(PROBE)
    except S3_ERRORS as exc:
        raise UserError(f"{option} {url}: cannot write to the bucket ({first_line(exc)})") from None
    return store
