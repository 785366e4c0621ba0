"""TENANTS: who each API key is, for fair share (shared/fair.py) and per-key limits.

A tenant is one API key, known by a *name* (in queue names, metrics and logs; never the secret) and
configured in API_KEYS_FILE, a TOML file beside API_KEYS:

    [keys.team-a]
    sha256 = "9f86d08..."      # SHA-256 of the key, hex: the file holds no secret
    weight = 2                 # share of each lane while others wait too (default 1)
    max_queued_rows = 50000    # rows it may have waiting for /predict (default MAX_QUEUED_ROWS_PER_KEY)

A key listed in API_KEYS but not in the file is a tenant of weight 1 named `key-` and the first 12 hex
digits of its digest. With no keys at all, every caller is the anonymous tenant "" (one tenant).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config import ConfigError, Settings
from shared.fair import NAME

_FIELDS = frozenset({"sha256", "weight", "max_queued_rows"})


@dataclass(frozen=True)
class Tenant:
    """One API key's name, weight and limit (0: MAX_QUEUED_ROWS_PER_KEY applies)."""

    name: str
    digest: str
    weight: int = 1
    max_queued_rows: int = 0


ANONYMOUS = Tenant(name="", digest="")


@dataclass(frozen=True)
class Tenants:
    """Every configured tenant, by the digest of its key."""

    by_digest: Mapping[str, Tenant] = field(default_factory=dict)

    def of(self, owner: str) -> Tenant:
        """The tenant whose key has digest `owner` (api.auth's owner string); ANONYMOUS for "" or an unknown one."""
        return self.by_digest.get(owner, ANONYMOUS) if owner else ANONYMOUS

    def weights(self) -> dict[str, int]:
        """Name → weight of the tenants that weigh other than 1 (claim.lua takes 1 for the rest)."""
        return {t.name: t.weight for t in self.by_digest.values() if t.weight != 1}


def fingerprint(key: str) -> str:
    """The digest of `key`: its SHA-256, hex (api.auth's owner string)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load(settings: Settings) -> Tenants:
    """The tenants of API_KEYS and API_KEYS_FILE.

    Raises:
        ConfigError: the file cannot be read or parsed, or an entry breaks a rule (the message names it).
    """
    tenants: dict[str, Tenant] = {}
    for tenant in _from_file(settings.api_keys_file):
        same = tenants.get(tenant.digest)
        if same is not None:
            raise ConfigError(
                f"API_KEYS_FILE: [keys.{same.name}] and [keys.{tenant.name}] are not valid: they have the same sha256"
            )
        tenants[tenant.digest] = tenant
    names = {t.name for t in tenants.values()}
    for key in settings.api_key_list():
        digest = fingerprint(key)
        if digest not in tenants:
            name = f"key-{digest[:12]}"
            if name in names:  # two tenants of one name would share a sub-queue, a limit and metric series
                raise ConfigError(
                    f"API_KEYS_FILE: [keys.{name}] is not valid: a key in API_KEYS without an entry is named so"
                )
            tenants[digest] = Tenant(name=name, digest=digest)
    return Tenants(tenants)


def _from_file(path: str) -> list[Tenant]:
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"API_KEYS_FILE={path!r} is not valid: cannot read it as TOML ({exc})") from None
    entries = document.get("keys", {})
    if not isinstance(entries, dict) or not entries or set(document) != {"keys"}:
        others = ", ".join(sorted(set(document) - {"keys"}))
        found = f" (found: {others})" if others else ""
        raise ConfigError(f"API_KEYS_FILE={path!r} is not valid: expected [keys.<name>] tables only{found}")
    return [_tenant(name, entry) for name, entry in entries.items()]


def _tenant(name: str, entry: Any) -> Tenant:
    where = f"API_KEYS_FILE: [keys.{name}]"
    if not NAME.fullmatch(name):
        raise ConfigError(f"{where} is not valid: a name is 1-63 letters, digits, '.', '_' or '-'")
    if not isinstance(entry, dict) or set(entry) - _FIELDS:
        raise ConfigError(f"{where} is not valid: expected only the fields {', '.join(sorted(_FIELDS))}")
    digest = str(entry.get("sha256", "")).lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ConfigError(f"{where} is not valid: sha256 must be the key's SHA-256, 64 hex digits")
    weight, limit = entry.get("weight", 1), entry.get("max_queued_rows", 0)
    # TOML's true and false are Python bools, which are ints
    if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 1000:
        raise ConfigError(f"{where} is not valid: weight must be an integer from 1 to 1000")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ConfigError(f"{where} is not valid: max_queued_rows must be an integer ≥ 0")
    return Tenant(name=name, digest=digest, weight=weight, max_queued_rows=limit)
