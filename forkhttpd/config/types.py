"""Value types for the settings table (parsing, validation and TOML/text rendering of one value);
standard library only, and it must not import anything else from forkhttpd.

Each ValueType turns text (a command-line argument or an environment variable) or a TOML value
into a typed Python value, or raises InvalidValue saying what form was expected. The caller
(forkhttpd.config.settings) adds *where* the bad value came from: a flag, a variable or a file key.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..interfaces.mounts import Mount

__all__ = [
    "AddressList", "BindAddress", "Bool", "Bind", "Choice", "Float", "Int", "InvalidValue",
    "ListOf", "Mount",
    "MountType", "Octal", "Optional", "SettingsError", "Str", "ValueType", "parse_bind",
    "show_value", "toml_string",
]


class SettingsError(Exception):
    """Bad configuration; str() names the flag, variable or file key and the expected form.

    `errors` holds one line per problem when several were found at once.
    """

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.errors: list[str] = list(errors) or [message]


class InvalidValue(ValueError):
    """A value type rejected a value; `detail` is an optional reason shown after it."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


def show_value(value: object) -> str:
    """A bad value as quoted in an error message (TOML spelling for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def toml_string(text: str) -> str:
    """`text` as a TOML basic string literal (escapes quotes, backslashes and control chars)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\t":
            out.append("\\t")
        elif char == "\n":
            out.append("\\n")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Bind addresses

@dataclass(frozen=True)
class BindAddress:
    """One listening address: a TCP host and port, a Unix socket path, or an inherited fd."""

    kind: str  # "tcp" | "unix" | "fd"
    host: str = ""  # tcp: "127.0.0.1", "::1", "0.0.0.0", "" (all interfaces); IPv6 unbracketed
    port: int = 0  # tcp: 0..65535, 0 = ephemeral
    path: str = ""  # unix
    fd: int = -1  # fd

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


BIND_FORMS = "HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N"
_HOSTNAME = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$")
_DIGITS = re.compile(r"^[0-9]+$")
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes on Linux, including the terminating NUL


def _parse_bind(text: str) -> BindAddress:
    """Parse one bind address or raise InvalidValue (the caller adds the flag and the text)."""
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path or "\0" in path:
            raise InvalidValue("a Unix socket needs a path")
        if len(os.fsencode(path)) > _UNIX_PATH_MAX:
            raise InvalidValue(f"Unix socket paths are limited to {_UNIX_PATH_MAX} bytes")
        return BindAddress("unix", path=path)
    if text.startswith("fd://"):
        number = text[len("fd://"):]
        if not _DIGITS.match(number):
            raise InvalidValue("the fd must be a number >= 0")
        return BindAddress("fd", fd=int(number))
    host, sep, port = text.rpartition(":")
    if not sep:
        raise InvalidValue()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidValue(f"{host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise InvalidValue("IPv6 addresses need brackets, as in [::1]:8000")
    elif host and not _HOSTNAME.match(host):
        raise InvalidValue(f"{host!r} is not a host name or IPv4 address")
    elif host and all(part.isdigit() for part in host.rstrip(".").split(".")):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise InvalidValue(f"{host!r} is not an IPv4 address") from None
    if not _DIGITS.match(port) or int(port) > 65535:
        raise InvalidValue("the port must be a number from 0 to 65535")
    return BindAddress("tcp", host=host, port=int(port))


def parse_bind(text: str, flag: str = "--bind") -> BindAddress:
    """HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N -> BindAddress; SettingsError otherwise."""
    try:
        return _parse_bind(text)
    except InvalidValue as error:
        reason = f" ({error.detail})" if error.detail else ""
        raise SettingsError(f"{flag}: expected {BIND_FORMS}, got {text!r}{reason}") from None


# --------------------------------------------------------------------------------------------
# Value types

class ValueType:
    """How one kind of value is read from text and TOML and written back.

    expected: the accepted form, as it follows "expected" in an error message.
    name: the type as shown in the docs table. metavar: the --help placeholder.
    """

    expected = "a value"
    name = "value"
    metavar = "VALUE"

    def parse(self, text: str) -> Any:
        """Command-line or environment text -> value; InvalidValue if malformed."""
        raise NotImplementedError

    def from_toml(self, value: object) -> Any:
        """A value decoded by tomllib -> value; strings go through parse()."""
        if isinstance(value, str):
            return self.parse(value)
        raise InvalidValue()

    def text(self, value: Any) -> str:
        """The value as a person (or the command line) would write it."""
        return str(value)

    def toml(self, value: Any) -> str:
        """The value as a TOML literal."""
        return toml_string(self.text(value))


class Int(ValueType):
    """An integer within [low, high]."""

    name = "integer"
    metavar = "INT"

    def __init__(self, low: int, high: int | None = None, unit: str = "") -> None:
        self.low, self.high = low, high
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        self.expected = f"an integer {bounds}"
        self.name = f"integer {bounds}" + (f" ({unit})" if unit else "")

    def _check(self, number: int) -> int:
        if number < self.low or (self.high is not None and number > self.high):
            raise InvalidValue()
        return number

    def parse(self, text: str) -> int:
        if not re.match(r"^\s*[+-]?[0-9]+\s*$", text):
            raise InvalidValue()
        return self._check(int(text))

    def from_toml(self, value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return self._check(value)
        raise InvalidValue()

    def toml(self, value: Any) -> str:
        return str(value)


class Float(ValueType):
    """A finite number, > low (exclusive) or >= low; stored as float."""

    metavar = "SECONDS"

    def __init__(self, low: float, exclusive: bool = False, unit: str = "seconds") -> None:
        self.low, self.exclusive = low, exclusive
        bound = f"{'>' if exclusive else '>='} {low:g}"
        self.expected = f"a number {bound}"
        self.name = f"number {bound}" + (f" ({unit})" if unit else "")

    def _check(self, number: float) -> float:
        if not math.isfinite(number) or number < self.low or (
                self.exclusive and number == self.low):
            raise InvalidValue()
        return float(number)

    def parse(self, text: str) -> float:
        try:
            return self._check(float(text))
        except ValueError:
            raise InvalidValue() from None

    def from_toml(self, value: object) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self._check(value)
        raise InvalidValue()

    def text(self, value: Any) -> str:
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)

    def toml(self, value: Any) -> str:
        return repr(float(value))


class Bool(ValueType):
    """A boolean: --flag/--no-flag, env 1/0/true/false/yes/no/on/off, TOML true/false."""

    expected = "one of 1, 0, true, false, yes, no, on, off"
    name = "boolean"
    metavar = ""
    WORDS = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}

    def parse(self, text: str) -> bool:
        try:
            return self.WORDS[text.strip().lower()]
        except KeyError:
            raise InvalidValue() from None

    def from_toml(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        raise InvalidValue("TOML booleans are written true or false, without quotes")

    def text(self, value: Any) -> str:
        return "true" if value else "false"

    def toml(self, value: Any) -> str:
        return self.text(value)


class Str(ValueType):
    """A non-empty string, optionally checked by `check` (which raises InvalidValue)."""

    def __init__(self, expected: str = "a non-empty string", name: str = "string",
                 metavar: str = "TEXT", check: Callable[[str], str] | None = None) -> None:
        self.expected, self.name, self.metavar, self.check = expected, name, metavar, check

    def parse(self, text: str) -> str:
        if not text or "\0" in text:
            raise InvalidValue()
        return self.check(text) if self.check else text


class Choice(ValueType):
    """One of a fixed set of words (matched case-insensitively, stored lower case)."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.expected = "one of " + ", ".join(choices)
        self.name = " | ".join(choices)
        self.metavar = "{" + ",".join(choices) + "}"

    def parse(self, text: str) -> str:
        word = text.strip().lower()
        if word not in self.choices:
            raise InvalidValue()
        return word


class Octal(ValueType):
    """A file mode mask in octal: "022", "0o22"; in TOML also an integer such as 0o022."""

    expected = 'an octal number from 0 to 0o777, such as "022" or 0o022'
    name = "octal integer"
    metavar = "MASK"

    def _check(self, number: int) -> int:
        if not 0 <= number <= 0o777:
            raise InvalidValue()
        return number

    def parse(self, text: str) -> int:
        digits = text.strip().lower().removeprefix("0o")
        if not re.match(r"^[0-7]+$", digits):
            raise InvalidValue()
        return self._check(int(digits, 8))

    def from_toml(self, value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return self._check(value)
        return super().from_toml(value)

    def text(self, value: Any) -> str:
        return f"0o{value:03o}"

    def toml(self, value: Any) -> str:
        return self.text(value)


class Bind(ValueType):
    """A listening address; tcp_only for addresses that must be TCP."""

    metavar = "ADDRESS"

    def __init__(self, tcp_only: bool = False) -> None:
        self.tcp_only = tcp_only
        self.expected = "HOST:PORT or [IPV6]:PORT" if tcp_only else BIND_FORMS
        self.name = "TCP address" if tcp_only else "address"

    def parse(self, text: str) -> BindAddress:
        address = _parse_bind(text)
        if self.tcp_only and address.kind != "tcp":
            raise InvalidValue("only a TCP address is possible here")
        return address


class MountType(ValueType):
    """URL_PREFIX=DIR, the prefix starting with "/"."""

    expected = 'URL_PREFIX=DIR with a prefix starting with "/"'
    name = "URL_PREFIX=DIR"
    metavar = "URL_PREFIX=DIR"

    def parse(self, text: str) -> Mount:
        prefix, sep, directory = text.partition("=")
        if not sep or not prefix.startswith("/") or not directory or "\0" in text:
            raise InvalidValue()
        if any(char.isspace() for char in prefix):
            raise InvalidValue("the URL prefix must not contain spaces")
        return Mount(prefix, directory)


class AddressList(ValueType):
    """Peers named by address: a comma list of IP addresses and CIDR networks, `*` for every
    peer, `unix` for Unix-socket peers; empty for none. A TOML array or string in a file."""

    expected = 'a comma list of IP addresses and networks (CIDR), "*" or "unix"'
    name = "list of addresses, networks, * or unix"
    metavar = "ADDRESSES"

    @staticmethod
    def _item(text: str) -> str:
        if text in ("*", "unix"):
            return text
        try:
            return str(ipaddress.ip_network(text, strict=False) if "/" in text
                       else ipaddress.ip_address(text))
        except ValueError:
            raise InvalidValue(f"{text!r} is not an IP address or network") from None

    def parse(self, text: str) -> tuple[str, ...]:
        return tuple(self._item(part.strip()) for part in text.split(",") if part.strip())

    def from_toml(self, value: object) -> tuple[str, ...]:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return self.parse(",".join(value))
        return tuple(super().from_toml(value))

    def text(self, value: Any) -> str:
        return ",".join(value)

    def toml(self, value: Any) -> str:
        return "[" + ", ".join(toml_string(item) for item in value) + "]"


class Optional(ValueType):
    """`inner` or None (not set); an empty string means None."""

    def __init__(self, inner: ValueType) -> None:
        self.inner = inner
        self.expected, self.name, self.metavar = inner.expected, inner.name, inner.metavar

    def parse(self, text: str) -> Any:
        return None if text == "" else self.inner.parse(text)

    def from_toml(self, value: object) -> Any:
        return None if value == "" else self.inner.from_toml(value)

    def text(self, value: Any) -> str:
        return "" if value is None else self.inner.text(value)

    def toml(self, value: Any) -> str:
        return self.inner.toml(value)


class ListOf(ValueType):
    """A repeatable setting: the flag repeated, comma separated in the environment, a TOML
    array in a file. Stored as a tuple."""

    def __init__(self, item: ValueType) -> None:
        self.item = item
        self.expected, self.metavar = item.expected, item.metavar
        self.name = f"list of {item.name}"

    def parse_items(self, texts: Sequence[str]) -> tuple[Any, ...]:
        """Items already split (repeated flags); raises InvalidValue carrying the bad item."""
        values = []
        for text in texts:
            try:
                values.append(self.item.parse(text))
            except InvalidValue as error:
                raise BadItem(text, error.detail) from None
        return tuple(values)

    def parse(self, text: str) -> tuple[Any, ...]:
        return self.parse_items([part.strip() for part in text.split(",") if part.strip()])

    def from_toml(self, value: object) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise InvalidValue("a TOML array of strings is needed here, such as [\"...\"]")
        values = []
        for item in value:
            try:
                values.append(self.item.from_toml(item))
            except InvalidValue as error:
                raise BadItem(item, error.detail) from None
        return tuple(values)

    def text(self, value: Any) -> str:
        return ", ".join(self.item.text(item) for item in value)

    def toml(self, value: Any) -> str:
        return "[" + ", ".join(self.item.toml(item) for item in value) + "]"


class BadItem(InvalidValue):
    """One item of a list was bad; the error message quotes the item, not the whole list."""

    def __init__(self, item: object, detail: str = "") -> None:
        super().__init__(detail)
        self.item = item
