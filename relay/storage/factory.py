"""Choosing a store from `--store`: a directory, or `s3://BUCKET/PREFIX` for an object store."""

from __future__ import annotations

from pathlib import Path

from relay.contract import read_export
from relay.storage.store import DiskStore, Store, StoreConfigError, check_listed_files

S3_SCHEME = "s3://"


def open_store(
    spec: str,
    create: bool = True,
    lease_seconds: float | None = None,
    background_parse_bytes: int | None = None,
    catalog: bool = True,
    work_dir: Path | None = None,
) -> Store:
    """The store `spec` names; the S3 store is not connected yet (its `start` checks it). `catalog`
    False: the store reads and checks every export, trusting no catalog (`check`). `work_dir`: where
    an object store's replica keeps its catalog (a directory store keeps its own in the store; None:
    an object store has none, and every start reads every manifest)."""
    if spec.startswith(S3_SCHEME):
        from relay.storage.s3 import LEASE_SECONDS, S3Location, S3Store  # aiobotocore loads only here

        return S3Store(
            S3Location.parse(spec), lease_seconds=lease_seconds or LEASE_SECONDS,
            catalog_dir=work_dir if catalog else None, read_tips_first=catalog,
        )
    if "://" in spec:
        raise StoreConfigError(f"--store {spec!r}: only directories and s3://BUCKET/PREFIX are supported")
    path = Path(spec)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreConfigError(f"--store {spec}: cannot create the directory ({e.strerror})") from None
    elif not path.is_dir():
        raise StoreConfigError(f"--store {spec}: no such directory")
    return DiskStore(path, background_parse_bytes=background_parse_bytes, catalog=catalog)


def store_identity(spec: str) -> str:
    """`Store.identity` of the store `spec` names, without making it: what its default work
    directory is named after."""
    if spec.startswith(S3_SCHEME):
        from relay.storage.s3 import S3Location

        return str(S3Location.parse(spec))
    return spec


async def check_store(store: Store) -> None:
    """Connect once and check the store works (credentials, bucket, conditional writes), then let go."""
    await store.check()


async def publish_export(store: Store, directory: Path) -> tuple[str, int]:
    """Publish one local export directory (what `export-dists` wrote) to `store`: (key, files written)."""
    export = read_export(directory)
    check_listed_files(directory, export)
    return export.key, await store.publish_copy(directory, export)
