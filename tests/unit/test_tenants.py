"""API_KEYS_FILE: per-key names, weights and limits, keys held as SHA-256 digests (shared/tenants.py)."""

from __future__ import annotations

import pytest

from shared.config import ConfigError, Settings
from shared.tenants import ANONYMOUS, load
from shared.tenants import fingerprint as sha


def write(tmp_path, text: str) -> str:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    return str(path)


def test_the_keys_file_names_weighs_and_limits_each_key_by_its_digest(tmp_path):
    path = write(
        tmp_path,
        f'[keys.team-a]\nsha256 = "{sha("alpha")}"\nweight = 3\nmax_queued_rows = 500\n'
        f'[keys.team-b]\nsha256 = "{sha("beta").upper()}"\n',
    )
    tenants = load(Settings.from_env({}).replace(api_keys_file=path, api_keys="gamma"))
    a, b, c = (tenants.of(sha(k)) for k in ("alpha", "beta", "gamma"))
    assert (a.name, a.weight, a.max_queued_rows) == ("team-a", 3, 500)
    assert (b.name, b.weight, b.max_queued_rows) == ("team-b", 1, 0)
    assert c.name == f"key-{sha('gamma')[:12]}"  # in API_KEYS only: named by its digest, never the secret
    assert tenants.weights() == {"team-a": 3}
    assert tenants.of("") is ANONYMOUS and tenants.of(sha("unknown")) is ANONYMOUS


def test_no_keys_means_one_anonymous_tenant():
    assert load(Settings.from_env({})).by_digest == {}


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("not toml [", "cannot read it as TOML"),
        ("[other]\nx = 1\n", r"expected \[keys.<name>\] tables"),
        ('[keys."bad name"]\nsha256 = "00"\n', "a name is 1-63"),
        ('[keys.a]\nsha256 = "00"\n', "64 hex digits"),
        (f'[keys.a]\nsha256 = "{"0" * 64}"\nweight = 0\n', "weight must be"),
        (f'[keys.a]\nsha256 = "{"0" * 64}"\nmax_queued_rows = -1\n', "max_queued_rows must be"),
        (f'[keys.a]\nsha256 = "{"0" * 64}"\nkey = "secret"\n', "expected only the fields"),
        (
            f'[keys.a]\nsha256 = "{"0" * 64}"\n[keys.b]\nsha256 = "{"0" * 64}"\n',
            r"\[keys.a\] and \[keys.b\].*same sha256",
        ),
        ('[keys."team-a\\n"]\nsha256 = "00"\n', "a name is 1-63"),  # a name ending in a newline
        (f'extra = 1\n[keys.a]\nsha256 = "{"0" * 64}"\n', r"tables only \(found: extra\)"),
        (f'[keys.a]\nsha256 = "{"0" * 64}"\n[key.b]\nsha256 = "{"1" * 64}"\n', r"found: key\)"),  # a typo
        (f'[keys.a]\nsha256 = "{"0" * 64}"\nweight = true\n', "weight must be an integer"),
        (f'[keys.a]\nsha256 = "{"0" * 64}"\nmax_queued_rows = true\n', "max_queued_rows must be an integer"),
    ],
)
def test_a_bad_keys_file_is_refused_with_a_message_naming_what_is_wrong(tmp_path, text, complaint):
    with pytest.raises(ConfigError, match=complaint):
        load(Settings.from_env({}).replace(api_keys_file=write(tmp_path, text)))


def test_a_negative_per_key_limit_is_refused():
    with pytest.raises(ConfigError, match="MAX_QUEUED_ROWS_PER_KEY"):
        Settings.from_env({"MAX_QUEUED_ROWS_PER_KEY": "-1"})


def test_a_file_entry_may_not_take_the_name_of_a_key_listed_only_in_api_keys(tmp_path):
    taken = f"key-{sha('gamma')[:12]}"
    path = write(tmp_path, f'[keys.{taken}]\nsha256 = "{sha("alpha")}"\n')
    with pytest.raises(ConfigError, match=rf"\[keys.{taken}\] is not valid: a key in API_KEYS without an entry"):
        load(Settings.from_env({}).replace(api_keys_file=path, api_keys="gamma"))
