"""Webhook signatures and callback URL checks."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.errors import InvalidInput
from shared.webhooks import check_callback_url, sign, verify


def test_the_signature_is_hmac_sha256_of_the_exact_body():
    body = b'{"id":"1","status":"finished"}'
    assert sign(body, "k") == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert verify(body, "k", sign(body, "k"))
    assert not verify(body, "other", sign(body, "k"))
    assert not verify(body + b"\n", "k", sign(body, "k"))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/x",
        "http://",
        "/relative",
        "x" * 3000,
        42,
        "http://[",
        "http://a]/x",
        "http://[::1]/hook",
        "http://user:pw@host/x",
        "http://host/a b",
        "http://host/\n",
    ],
)
def test_unusable_callback_urls_are_invalid_input(url):
    with pytest.raises(InvalidInput) as error:
        check_callback_url(url)
    assert error.value.field == "callback_url"


def test_absent_callback_url_is_none_and_a_good_one_is_kept():
    assert check_callback_url(None) is None and check_callback_url("") is None
    assert check_callback_url("https://example.com/hook?x=1") == "https://example.com/hook?x=1"


def test_callback_hosts_can_be_limited_to_an_allow_list_with_its_subdomains():
    allowed = frozenset({"hooks.example.com", "partner.org"})
    assert check_callback_url("https://hooks.example.com/x", allowed)
    assert check_callback_url("http://api.partner.org:8080/cb", allowed)
    for url in (
        "http://127.0.0.1/x",
        "http://169.254.169.254/latest",
        "https://evilpartner.org/",
        "http://example.com/",
    ):
        with pytest.raises(InvalidInput) as info:
            check_callback_url(url, allowed)
        assert info.value.field == "callback_url" and "WEBHOOK_ALLOWED_HOSTS" in info.value.expected
