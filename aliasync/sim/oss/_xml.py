"""XML for the OSS emulator: a tiny element builder for answers and strict request parsers.

Answers of the S3 face carry the S3 namespace on their root element, as Amazon S3 does
(botocore ignores it); the native face's answers have none, as OSS writes them.
Request bodies (CreateBucket, CompleteMultipartUpload, DeleteObjects) are parsed with expat
after a size check; namespaces are stripped so both plain and namespaced bodies parse.
"""

from __future__ import annotations

import itertools
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape

from aliasync.sim._errors import SimError
from aliasync.sim.oss._records import LifecycleRule

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass(frozen=True)
class Element:
    """One XML element: either text or child elements."""

    tag: str
    text: str | None = None
    children: tuple[Element, ...] = ()
    xmlns: str | None = None

    def render(self) -> str:
        ns = f' xmlns="{self.xmlns}"' if self.xmlns else ""
        if self.children:
            inner = "".join(c.render() for c in self.children)
        else:
            inner = escape(self.text or "")
        return f"<{self.tag}{ns}>{inner}</{self.tag}>"


def el(tag: str, value: str | int | bool | None = None) -> Element:
    """A text element; booleans render as ``true``/``false``."""
    if isinstance(value, bool):
        return Element(tag, "true" if value else "false")
    return Element(tag, None if value is None else str(value))


def node(tag: str, *children: Element | Iterable[Element] | None) -> Element:
    """An element with children; ``None`` children are skipped, iterables are flattened."""
    flat: list[Element] = []
    for child in children:
        if child is None:
            continue
        if isinstance(child, Element):
            flat.append(child)
        else:
            flat.extend(child)
    return Element(tag, children=tuple(flat))


def document(root: Element, *, namespaced: bool = True) -> bytes:
    """The full XML document, with declaration, as UTF-8 bytes."""
    if namespaced:
        root = Element(root.tag, root.text, root.children, S3_NS)
    return (DECLARATION + root.render()).encode()


def iso8601(epoch_seconds: float) -> str:
    """``2024-01-02T03:04:05.000Z``: OSS keeps whole seconds (every sample in its docs ends in
    ``.000Z``, and oss2 parses nothing else)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch_seconds))


def owner_fields(account_id: str) -> list[Element]:
    """The ID and DisplayName children of an Owner or Initiator element."""
    return [el("ID", account_id), el("DisplayName", account_id)]


def url_encode(value: str, encode: bool) -> str:
    """A key as listed: percent-encoded when the client asked for ``encoding-type=url``."""
    return quote(value, safe="/") if encode else value


# --- request bodies ------------------------------------------------------------------------


def _malformed() -> SimError:
    return SimError(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published "
        "schema.",
        400,
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(body: bytes, root_tag: str) -> ET.Element:
    """Parse ``body`` and check its root element's local name; MalformedXML otherwise."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise _malformed()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise _malformed() from None
    for elem in root.iter():
        elem.tag = _local(elem.tag)
    if root.tag != root_tag:
        raise _malformed()
    return root


def location_constraint(body: bytes) -> str | None:
    """The LocationConstraint of a CreateBucket body, None when absent or empty."""
    if not body.strip():
        return None
    root = parse(body, "CreateBucketConfiguration")
    found = root.find("LocationConstraint")
    text = (found.text or "").strip() if found is not None else ""
    return text or None


def completed_parts(body: bytes) -> list[tuple[int, str]]:
    """(PartNumber, ETag) pairs of a CompleteMultipartUpload body, in the order sent."""
    root = parse(body, "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    for part in root.findall("Part"):
        number, etag = part.find("PartNumber"), part.find("ETag")
        text = (number.text or "").strip() if number is not None else ""
        # ASCII digits only ("\u00b2" passes isdigit, not int) and few enough for int().
        if etag is None or not (text.isascii() and text.isdigit()) or len(text) > 9:
            raise _malformed()
        parts.append((int(text), (etag.text or "").strip()))
    if not parts:
        raise _malformed()
    return parts


def delete_request(body: bytes) -> tuple[list[str], bool]:
    """The keys of a DeleteObjects body and its Quiet flag."""
    root = parse(body, "Delete")
    quiet_el = root.find("Quiet")
    quiet = quiet_el is not None and (quiet_el.text or "").strip().lower() == "true"
    keys: list[str] = []
    for obj in root.findall("Object"):
        key = obj.find("Key")
        if key is None or not key.text:
            raise _malformed()
        keys.append(key.text)
    if not keys or len(keys) > 1000:
        raise _malformed()
    return keys, quiet


# --- lifecycle (native PutBucketLifecycle / GetBucketLifecycle) ----------------------------

MAX_LIFECYCLE_RULES = 1000
_RULE_PARTS = frozenset({"ID", "Prefix", "Status", "Expiration", "AbortMultipartUpload"})


def _days_or_date(parent: ET.Element, what: str) -> tuple[int | None, str | None]:
    days, date = parent.find("Days"), parent.find("CreatedBeforeDate")
    if (days is None) == (date is None):
        raise SimError("InvalidArgument", f"{what} needs exactly one of Days or Date.", 400)
    if days is not None:
        text = (days.text or "").strip()
        if not (text.isascii() and text.isdigit() and 0 < len(text) <= 9) or int(text) < 1:
            raise SimError("InvalidArgument", f"{what} Days must be a positive integer.", 400)
        return int(text), None
    assert date is not None
    text = (date.text or "").strip()
    try:
        time.strptime(text, "%Y-%m-%dT00:00:00.000Z")
    except ValueError:
        raise SimError(
            "InvalidArgument", f"{what} Date must be midnight UTC, ISO 8601.", 400
        ) from None
    return None, text


def lifecycle_rules(body: bytes) -> tuple[LifecycleRule, ...]:
    """The rules of a PutBucketLifecycle body (the elements may come in any order)."""
    root = parse(body, "LifecycleConfiguration")
    found = root.findall("Rule")
    if not found or len(found) > MAX_LIFECYCLE_RULES:
        raise _malformed()
    rules: list[LifecycleRule] = []
    for index, rule in enumerate(found):
        parts = {child.tag for child in rule}
        unknown = parts - _RULE_PARTS
        if unknown:
            raise SimError(
                "NotImplemented", f"The emulator does not implement {min(unknown)!r}.", 501
            )
        status = (rule.findtext("Status") or "").strip()
        if status not in ("Enabled", "Disabled"):
            raise _malformed()
        expiration, abort = rule.find("Expiration"), rule.find("AbortMultipartUpload")
        if expiration is None and abort is None:
            raise SimError("InvalidRequest", "A lifecycle rule needs an action.", 400)
        exp_days, exp_date = (
            _days_or_date(expiration, "Expiration") if expiration is not None else (None, None)
        )
        abort_days, abort_date = (
            _days_or_date(abort, "AbortMultipartUpload") if abort is not None else (None, None)
        )
        rule_id = (rule.findtext("ID") or "").strip() or f"rule-{index + 1}"
        rules.append(
            LifecycleRule(
                rule_id, rule.findtext("Prefix") or "", status == "Enabled",
                exp_days, exp_date, abort_days, abort_date,
            )
        )  # fmt: skip
    ids = [r.rule_id for r in rules]
    prefixes = sorted(r.prefix for r in rules)
    overlapping = any(b.startswith(a) for a, b in itertools.pairwise(prefixes))
    if len(set(ids)) != len(ids) or overlapping:
        raise SimError(
            "InvalidArgument", "Lifecycle rule IDs must be unique and prefixes disjoint.", 400
        )
    return tuple(rules)


def lifecycle_document(rules: tuple[LifecycleRule, ...]) -> Element:
    def when(tag: str, days: int | None, date: str | None) -> Element | None:
        if days is None and date is None:
            return None
        return node(tag, el("Days", days) if days is not None else el("CreatedBeforeDate", date))

    return node(
        "LifecycleConfiguration",
        [
            node(
                "Rule",
                el("ID", r.rule_id),
                el("Prefix", r.prefix),
                el("Status", "Enabled" if r.enabled else "Disabled"),
                when("Expiration", r.expiration_days, r.expiration_date),
                when("AbortMultipartUpload", r.abort_days, r.abort_date),
            )
            for r in rules
        ],
    )
