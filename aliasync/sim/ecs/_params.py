"""Reading ECS RPC parameters as the SDK flattens them (``Tag.1.Key``, ``AddAccount.2``, ...)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from aliasync.sim._errors import SimError


def missing(name: str) -> SimError:
    return SimError(
        "MissingParameter",
        f'The input parameter "{name}" that is mandatory for processing this request is not '
        "supplied.",
    )


def invalid(name: str, detail: str = "") -> SimError:
    message = f'The specified parameter "{name}" is not valid.'
    return SimError("InvalidParameter", f"{message} {detail}".strip())


def encode_token(offset: int) -> str:
    """An opaque NextToken for a position in a listing."""
    return f"{offset:032x}"


def decode_token(token: str, name: str = "NextToken") -> int:
    if not re.fullmatch(r"[0-9a-f]{32}", token):
        raise invalid(name)
    return int(token, 16)


class Params:
    """The request's parameters (first value wins), with typed, validating accessors."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}
        for key, value in pairs:
            self._values.setdefault(key, value)

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def text(self, name: str, default: str = "") -> str:
        value = self._values.get(name)
        return default if value is None or value == "" else value

    def opt(self, name: str) -> str | None:
        """The value, or None when absent or empty."""
        value = self._values.get(name)
        return None if value is None or value == "" else value

    def required(self, name: str) -> str:
        value = self._values.get(name)
        if value is None or value == "":
            raise missing(name)
        return value

    def flag(self, name: str) -> bool | None:
        value = self._values.get(name)
        if value is None or value == "":
            return None
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise invalid(name)
        return lowered == "true"

    def number(self, name: str, default: int, low: int, high: int) -> int:
        value = self._values.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise invalid(name) from None
        if not low <= number <= high:
            raise invalid(name, f"It must be between {low} and {high}.")
        return number

    def choice(self, name: str, allowed: Iterable[str], default: str = "") -> str:
        """A value from ``allowed`` (matched case-insensitively, returned as spelt there)."""
        value = self.opt(name)
        if value is None:
            return default
        for option in allowed:
            if option.lower() == value.lower():
                return option
        raise invalid(name)

    def _numbered(self, prefix: str) -> dict[int, dict[str, str]]:
        """``prefix.N`` (field "") and ``prefix.N.Field`` values, by N."""
        out: dict[int, dict[str, str]] = {}
        pattern = re.compile(rf"{re.escape(prefix)}\.([0-9]{{1,9}})(?:\.(.+))?")
        for key, value in self._values.items():
            match = pattern.fullmatch(key)
            if match:
                out.setdefault(int(match.group(1)), {})[match.group(2) or ""] = value
        return dict(sorted(out.items()))

    def indexed(self, prefix: str, limit: int | None = None) -> list[str]:
        """``prefix.1``, ``prefix.2``, ... in order of N (blanks skipped)."""
        values = [v[""] for v in self._numbered(prefix).values() if v.get("")]
        return values if limit is None else values[:limit]

    def structs(self, prefix: str) -> dict[int, dict[str, str]]:
        """``prefix.N.Field`` values grouped by N."""
        return {n: {k: v for k, v in f.items() if k} for n, f in self._numbered(prefix).items()}

    def tags(self, prefix: str = "Tag") -> list[tuple[str, str]]:
        """``Tag.N.Key``/``Tag.N.Value`` pairs (a Value without its Key is refused)."""
        out = []
        for fields in self.structs(prefix).values():
            key = fields.get("Key", fields.get("key"))
            value = fields.get("Value", fields.get("value"))
            if key is None:
                if value is not None:
                    raise SimError(
                        "InvalidTag.Mismatch",
                        "The specified Tag.n.Key and Tag.n.Value are not match.",
                    )
                continue
            out.append((key, value or ""))
        return out

    def tag_filter(self, prefix: str = "Tag") -> list[tuple[str, str | None]]:
        """``Tag.N.Key`` with an optional ``Tag.N.Value`` (None: any value)."""
        out: list[tuple[str, str | None]] = []
        for fields in self.structs(prefix).values():
            key = fields.get("Key", fields.get("key"))
            if key:
                out.append((key, fields.get("Value", fields.get("value"))))
        return out
