"""Secrets the app needs: from Settings when set, otherwise generated once under data_dir.

Production refuses to start without them (Settings validates that). Development and test keep a
generated `secrets.json` (mode 0600) beside the embedded database, so tokens and key hashes stay
valid across restarts and across processes sharing the data directory (the CLI and the server).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.config import Settings


@dataclass(frozen=True)
class AppSecrets:
    pepper: bytes
    encryption_key: bytes
    jwt_private_key_pem: bytes
    session_secret: str
    db_app_password: str
    db_platform_password: str


def _generate() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {
        "secret_pepper": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "encryption_key": Fernet.generate_key().decode(),
        "jwt_private_key_pem": pem,
        "session_secret": secrets.token_urlsafe(32),
        "db_app_password": secrets.token_urlsafe(24),
        "db_platform_password": secrets.token_urlsafe(24),
    }


def _stored(data_dir: Path) -> dict[str, str]:
    path = data_dir / "secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    data_dir.mkdir(parents=True, exist_ok=True)
    fresh = _generate()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(fresh, f)
    try:
        os.link(tmp, path)  # atomic create-if-absent: two processes starting together agree on one file
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    kept: dict[str, str] = json.loads(path.read_text())
    return kept


def load_secrets(settings: Settings) -> AppSecrets:
    names = ["secret_pepper", "encryption_key", "jwt_private_key_pem", "session_secret"]
    # Role passwords are ours to choose only when we create the roles (no explicit role URLs given).
    if settings.database_app_url is None:
        names.append("db_app_password")
    if settings.database_platform_url is None:
        names.append("db_platform_password")
    given = {n: getattr(settings, n) for n in names}
    values = {n: v.get_secret_value() for n, v in given.items() if v is not None}
    if len(values) < len(names):
        if settings.environment == "production":
            missing = ", ".join(f"FOREXRISK_{n.upper()}" for n in names if n not in values)
            raise RuntimeError(f"production needs these secrets in the environment: {missing}")
        values = {**_stored(settings.data_dir), **values}
    return AppSecrets(
        pepper=values["secret_pepper"].encode(),
        encryption_key=values["encryption_key"].encode(),
        jwt_private_key_pem=values["jwt_private_key_pem"].encode(),
        session_secret=values["session_secret"],
        db_app_password=values.get("db_app_password", ""),
        db_platform_password=values.get("db_platform_password", ""),
    )
