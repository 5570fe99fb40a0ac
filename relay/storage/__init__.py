"""Where exports live: the Store interface, the disk store, the S3 store, and `--store` to a Store.

The S3 store (relay.storage.s3) is not imported here: aiobotocore loads only when a bucket is used.
"""

from __future__ import annotations

from relay.storage.factory import check_store, open_store, publish_export
from relay.storage.store import (
    Blob,
    DiskStore,
    EvictionPolicy,
    FileCache,
    NotListed,
    PublishConflict,
    Store,
    StoreConfigError,
    StoreUnavailable,
)

__all__ = [
    "Blob",
    "DiskStore",
    "EvictionPolicy",
    "FileCache",
    "NotListed",
    "PublishConflict",
    "Store",
    "StoreConfigError",
    "StoreUnavailable",
    "check_store",
    "open_store",
    "publish_export",
]
