"""Replace e-mail addresses and public IP addresses with placeholders (FineWeb's PII step).

Why replace and not drop: dropping a document for containing an address would throw away most
contact pages and forum posts, and deleting the address would leave ungrammatical holes; a
well-formed placeholder keeps the text natural while removing the personal data.

Differences from FineWeb's formatter, on purpose:

* Placeholders are reserved documentation values (RFC 2606 domains, RFC 5737 addresses) and the one
  used for an address is picked from a hash of that address, not by a counter shared across
  documents: the output of a document does not depend on which documents came before it (our
  stages must be deterministic per shard), and the same address always gets the same placeholder.
* Running it twice changes nothing: placeholders are not personal data, so they are not replaced.
* IP addresses inside longer dotted numbers (version strings such as ``1.2.3.4.5``) are left alone.
* Every quantifier is bounded, so matching stays linear on adversarial input (long runs of
  address-like characters without an ``@``).
"""

from __future__ import annotations

import ipaddress
import re
import zlib

__all__ = ["EMAIL_REPLACEMENTS", "IP_REPLACEMENTS", "normalize_pii"]

#: Placeholders for e-mail addresses (reserved example domains).
EMAIL_REPLACEMENTS = ("email@example.com", "firstname.lastname@example.org")
#: Placeholders for IPv4 addresses (RFC 5737 documentation ranges; not global, so never re-replaced).
IP_REPLACEMENTS = ("192.0.2.15", "198.51.100.27", "203.0.113.42", "192.0.2.113", "198.51.100.201")

_LOCAL_CHARS = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_EMAIL = re.compile(
    rf"(?<![.{_LOCAL_CHARS}])"  # start of the local part
    rf"[{_LOCAL_CHARS}]{{1,64}}(?:\.[{_LOCAL_CHARS}]{{1,64}}){{0,8}}"  # local part
    r"@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24})"
    r"(?![A-Za-z0-9-])"
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?<![0-9.]){_OCTET}(?:\.{_OCTET}){{3}}(?![0-9])(?!\.[0-9])")
_RESERVED_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


def _pick(options: tuple[str, ...], key: str) -> str:
    return options[zlib.crc32(key.encode("utf-8", "surrogatepass")) % len(options)]


def _replace_email(m: re.Match[str]) -> str:
    domain = m.group("domain").lower()
    if domain in _RESERVED_EMAIL_DOMAINS or domain.endswith(tuple("." + d for d in _RESERVED_EMAIL_DOMAINS)):
        return m.group(0)
    return _pick(EMAIL_REPLACEMENTS, m.group(0))


def _ip_replacer(only_public: bool):
    def replace(m: re.Match[str]) -> str:
        found = m.group(0)
        try:
            ip = ipaddress.IPv4Address(found)
        except ValueError:  # pragma: no cover - the regex only matches valid octets
            return found
        if (only_public and not ip.is_global) or found in IP_REPLACEMENTS:
            return found
        return _pick(IP_REPLACEMENTS, found)

    return replace


_PUBLIC_IPS = _ip_replacer(True)
_ALL_IPS = _ip_replacer(False)


def normalize_pii(text: str, *, emails: bool = True, ips: bool = True, only_public_ips: bool = True) -> str:
    """`text` with e-mail addresses and (public, by default) IPv4 addresses replaced.

    Private, loopback and documentation addresses (``192.168.0.1``, ``127.0.0.1``) identify no one
    and are kept unless ``only_public_ips=False``.
    """
    if emails and "@" in text:
        text = _EMAIL.sub(_replace_email, text)
    if ips and "." in text:
        text = _IPV4.sub(_PUBLIC_IPS if only_public_ips else _ALL_IPS, text)
    return text
