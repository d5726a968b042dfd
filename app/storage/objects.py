"""File storage behind one small interface: `LocalStorage` (a directory, the default: `data_dir/files`)
and `S3Storage` (any S3-compatible object store, through boto3, the AWS SDK; endpoint URL, bucket, region
and credentials from settings, so MinIO, Ceph, R2 or AWS itself).

Keys are paths made by the app (`reports/<broker>/<report>/<name>`), never by a client. A stored file is
read back as a local path (served by the API after its own access checks) or as a short-lived presigned
URL (the API answers a redirect to it after the same checks).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from app.config import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def check_key(key: str) -> str:
    if not KEY.fullmatch(key) or len(key) > 512:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class ObjectStorage(Protocol):
    name: str

    async def put_file(self, key: str, source: Path, content_type: str) -> None:
        """Store the file at `source` under `key` (replacing what was there)."""
        ...

    async def locate(self, key: str, filename: str, content_type: str) -> Path | str:
        """A local path to serve, or a presigned URL to redirect to."""
        ...

    async def exists(self, key: str) -> bool: ...


class LocalStorage:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put_file(self, key: str, source: Path, content_type: str) -> None:
        target = self._path(key)

        def copy() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(source, partial)
            os.replace(partial, target)  # readers never see half a file

        await anyio.to_thread.run_sync(copy)

    async def locate(self, key: str, filename: str, content_type: str) -> Path | str:
        return self._path(key)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3Storage:
    name = "s3"

    def __init__(self, client: S3Client, bucket: str, prefix: str = "", url_seconds: int = 300) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url_seconds = url_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        import boto3  # only when configured: keeps start-up of the default (local) deployment light
        from botocore.config import Config

        secret = settings.storage_s3_secret_access_key
        client = boto3.client(
            "s3", endpoint_url=settings.storage_s3_endpoint_url, region_name=settings.storage_s3_region,
            aws_access_key_id=settings.storage_s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(signature_version="s3v4", connect_timeout=5, read_timeout=60,
                          retries={"max_attempts": 3, "mode": "standard"},
                          s3={"addressing_style": settings.storage_s3_addressing_style}),
        )
        assert settings.storage_s3_bucket is not None
        return cls(client, settings.storage_s3_bucket, settings.storage_s3_prefix, settings.storage_url_seconds)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put_file(self, key: str, source: Path, content_type: str) -> None:
        # boto3 is synchronous: its managed (multipart for large files) upload runs in a thread.
        extra: Any = {"ContentType": content_type}
        await anyio.to_thread.run_sync(
            lambda: self.client.upload_file(str(source), self.bucket, self._key(key), ExtraArgs=extra))

    async def locate(self, key: str, filename: str, content_type: str) -> Path | str:
        params = {"Bucket": self.bucket, "Key": self._key(key), "ResponseContentType": content_type,
                  "ResponseContentDisposition": f'attachment; filename="{filename}"'}
        url: str = await anyio.to_thread.run_sync(
            lambda: self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.url_seconds))
        return url

    async def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await anyio.to_thread.run_sync(lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


def build_storage(settings: Settings) -> ObjectStorage:
    if settings.storage_backend == "s3":
        return S3Storage.from_settings(settings)
    return LocalStorage(settings.storage_local_dir or settings.data_dir / "files")
