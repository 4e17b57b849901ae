"""URL block lists and PII replacement."""

from __future__ import annotations

import gzip
import time

import pytest

from filters import UrlBlocklist, normalize_pii
from filters.pii import EMAIL_REPLACEMENTS, IP_REPLACEMENTS

# ------------------------------------------------------------------------------------ URLs


def test_clean_urls_pass():
    bl = UrlBlocklist(domains=["bad.example"])
    for url in [
        "https://www.wikipedia.org/wiki/Sussex",
        "http://news.example.com/2024/05/essex-council-budget",
        "example.org/path?q=middlesex",
        "",
        None,
        "not a url at all",
        "http://[::1",  # malformed, must not raise
    ]:
        assert bl.check(url) is None, url


def test_domains_block_the_domain_and_its_subdomains():
    bl = UrlBlocklist(domains=["bad.example", "www.worse.example", "*.wild.example", "# comment"])
    assert bl.check("http://bad.example/") == "url_blocklist:domain=bad.example"
    assert bl.check("https://www.bad.example/page") == "url_blocklist:domain=bad.example"
    assert bl.check("https://a.b.BAD.example:8080/x") == "url_blocklist:domain=bad.example"
    assert bl.check("worse.example/path") == "url_blocklist:domain=worse.example"
    assert bl.check("https://x.wild.example") == "url_blocklist:domain=wild.example"
    assert bl.check("https://notbad.example/") is None
    assert bl.check("https://bad.example.org/") is None


def test_url_prefixes():
    bl = UrlBlocklist(urls=["http://host.example/forum/", "other.example/a/b.html"])
    assert bl.check("https://www.host.example/forum/thread/1") == "url_blocklist:url=host.example/forum"
    assert bl.check("https://host.example/forum") == "url_blocklist:url=host.example/forum"
    assert bl.check("https://host.example/forums") is None
    assert bl.check("https://other.example/a/b.html") == "url_blocklist:url=other.example/a/b.html"


def test_default_adult_word_lists():
    bl = UrlBlocklist()
    assert bl.check("https://free-porn.example/videos") == "url_blocklist:banned_word=porn"
    assert bl.check("https://example.com/xxx/video") == "url_blocklist:banned_word=xxx"
    assert bl.check("https://example.com/hot-teen-girls") == "url_blocklist:soft_word_count=3"
    assert bl.check("https://example.com/hot-soup-recipes") is None  # one soft word is fine
    assert bl.check("https://freepornsite.example/") == "url_blocklist:banned_subword=porn"
    assert bl.check("https://example.com/sussex/essex") is None  # "sex" is only a whole-word ban


def test_word_lists_can_be_replaced_or_switched_off():
    bl = UrlBlocklist(banned_words=[], banned_subwords=[], soft_banned_words=[])
    assert bl.check("https://free-porn.example/") is None
    custom = UrlBlocklist(banned_words=["casino"], banned_subwords=["jackpot"], soft_banned_words=[])
    assert custom.check("https://casino.example/") == "url_blocklist:banned_word=casino"
    assert custom.check("https://megajackpots.example/") == "url_blocklist:banned_subword=jackpot"


def test_from_files_reads_plain_gzip_and_ut1_folders(tmp_path):
    (tmp_path / "plain.txt").write_text("# blocked\nbad.example\n\nWWW.Shouty.Example\n")
    with gzip.open(tmp_path / "more.gz", "wt") as f:
        f.write("zipped.example\n")
    ut1 = tmp_path / "ut1" / "adult"
    ut1.mkdir(parents=True)
    (ut1 / "domains").write_text("ut1-domain.example\n")
    (ut1 / "urls").write_text("ut1-url.example/dir\n")
    (tmp_path / "subs.txt").write_text("casino\n")
    bl = UrlBlocklist.from_files(
        domain_files=[tmp_path / "plain.txt", tmp_path / "more.gz", tmp_path / "ut1"],
        substring_files=[tmp_path / "subs.txt"],
    )
    assert bl.check("https://shouty.example/") == "url_blocklist:domain=shouty.example"
    assert bl.check("https://zipped.example/") == "url_blocklist:domain=zipped.example"
    assert bl.check("https://m.ut1-domain.example/") == "url_blocklist:domain=ut1-domain.example"
    assert bl.check("https://ut1-url.example/dir/page") == "url_blocklist:url=ut1-url.example/dir"
    assert bl.check("https://bestcasinos.example/") == "url_blocklist:banned_subword=casino"
    assert bl.check("https://freepornsite.example/") == "url_blocklist:banned_subword=porn"  # defaults kept


def test_large_lists_stay_fast():
    bl = UrlBlocklist(
        domains=[f"d{i}.example" for i in range(100_000)], banned_subwords=[f"w{i}x" for i in range(5000)]
    )
    start = time.perf_counter()
    for i in range(2000):
        bl.check(f"https://sub.site{i}.example/some/long/path/to/page-{i}.html?query=value")
    assert time.perf_counter() - start < 2.0


# ------------------------------------------------------------------------------------- PII


def test_emails_are_replaced_not_dropped():
    out = normalize_pii("Write to john.doe+news@mail.example.co.uk or JANE@Company.COM today.")
    assert "john.doe" not in out and "JANE" not in out
    assert out.startswith("Write to ") and out.endswith(" today.")
    assert sum(out.count(r) for r in EMAIL_REPLACEMENTS) == 2


def test_public_ips_are_replaced_private_ones_kept():
    out = normalize_pii("Server 8.8.8.8 and 93.184.216.34, router 192.168.0.1, local 127.0.0.1.")
    assert "8.8.8.8" not in out and "93.184.216.34" not in out
    assert "192.168.0.1" in out and "127.0.0.1" in out
    assert sum(out.count(r) for r in IP_REPLACEMENTS) == 2
    assert "192.168.0.1" not in normalize_pii("router 192.168.0.1", only_public_ips=False)


def test_version_numbers_and_non_addresses_are_untouched():
    for text in ["version 1.2.3.4.5", "999.1.1.1", "1.2.3", "an @ sign", "user@localhost", "a@b", "x.y@z"]:
        assert normalize_pii(text) == text


def test_pii_is_deterministic_idempotent_and_switchable():
    text = "Mail a@site.example or b@site.example from 8.8.4.4; again a@site.example."
    once = normalize_pii(text)
    assert normalize_pii(text) == once  # no state carried between calls
    assert normalize_pii(once) == once  # placeholders are not personal data
    a1, a2 = once.split(" or ")[0].split()[-1], once.rsplit(" ", 1)[-1].rstrip(".")
    assert a1 == a2  # the same address always gets the same placeholder
    assert normalize_pii(text, emails=False, ips=False) == text
    assert "@site.example" in normalize_pii(text, emails=False)


@pytest.mark.parametrize(
    "evil",
    [
        "a" * 50_000 + "@",
        ("a." * 20_000) + "@",
        "x@" + "a" * 50_000,
        "x@" + "a-" * 20_000 + ".",
        "1." * 30_000,
        "!#$%&'*+/=?^_`{|}~-" * 3000 + "@example",
    ],
)
def test_pii_regexes_do_not_backtrack_catastrophically(evil):
    start = time.perf_counter()
    normalize_pii(evil)
    assert time.perf_counter() - start < 1.0
