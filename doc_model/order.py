"""Fractional order keys: a string strictly between two others, staying short when appending.

The format is the widely used one of "fractional indexing" (as in Figma and
rocicorp's library): an integer part whose first character encodes its
length ('a' = 1 digit, 'b' = 2 ... ; 'A'..'Z' for the negative side), then an
optional fraction. Appending increments the integer, so a column of 10,000
cards has keys of 3-4 characters. Keys written by other clients in another
format still get a valid key between them (one character longer).
"""

from __future__ import annotations

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ZERO = DIGITS[0]
SMALLEST_INTEGER = "A" + ZERO * 26


class InvalidOrderKey(ValueError):
    pass


def _midpoint(a: str, b: str | None) -> str:
    """A fraction strictly between fractions a < b (b None: 1). Neither may end in ZERO."""
    if b is not None and a >= b:
        raise InvalidOrderKey(f"{a!r} is not before {b!r}")
    if a.endswith(ZERO) or (b is not None and b.endswith(ZERO)):
        raise InvalidOrderKey("fraction ends in zero")
    if b is not None:
        n = 0
        while n < len(b) and (a[n] if n < len(a) else ZERO) == b[n]:
            n += 1
        if n > 0:
            return b[:n] + _midpoint(a[n:], b[n:])
    da = DIGITS.index(a[0]) if a else 0
    db = DIGITS.index(b[0]) if b is not None else len(DIGITS)
    if db - da > 1:
        return DIGITS[(da + db + 1) // 2]
    if b is not None and len(b) > 1:
        return b[:1]
    return DIGITS[da] + _midpoint(a[1:], None)


def _integer_length(head: str) -> int:
    if "a" <= head <= "z":
        return ord(head) - ord("a") + 2
    if "A" <= head <= "Z":
        return ord("Z") - ord(head) + 2
    raise InvalidOrderKey(f"invalid order key head {head!r}")


def _split(key: str) -> tuple[str, str]:
    if not key:
        raise InvalidOrderKey("empty order key")
    length = _integer_length(key[0])
    if length > len(key):
        raise InvalidOrderKey(f"order key {key!r} is too short")
    integer, fraction = key[:length], key[length:]
    if fraction.endswith(ZERO) or any(c not in DIGITS for c in key[1:]):
        raise InvalidOrderKey(f"invalid order key {key!r}")
    if key.startswith(SMALLEST_INTEGER) and not fraction:
        raise InvalidOrderKey("the smallest integer needs a fraction")
    return integer, fraction


def _increment(integer: str) -> str | None:
    head, digits = integer[0], list(integer[1:])
    for i in range(len(digits) - 1, -1, -1):
        d = DIGITS.index(digits[i]) + 1
        if d < len(DIGITS):
            digits[i] = DIGITS[d]
            return head + "".join(digits)
        digits[i] = ZERO
    if head == "Z":
        return "a" + ZERO
    if head == "z":
        return None
    new_head = chr(ord(head) + 1)
    if new_head > "a":
        digits.append(ZERO)
    else:
        digits.pop()
    return new_head + "".join(digits)


def _decrement(integer: str) -> str | None:
    head, digits = integer[0], list(integer[1:])
    for i in range(len(digits) - 1, -1, -1):
        d = DIGITS.index(digits[i]) - 1
        if d >= 0:
            digits[i] = DIGITS[d]
            return head + "".join(digits)
        digits[i] = DIGITS[-1]
    if head == "a":
        return "Z" + DIGITS[-1]
    if head == "A":
        return None
    new_head = chr(ord(head) - 1)
    if new_head < "Z":
        digits.append(DIGITS[-1])
    else:
        digits.pop()
    return new_head + "".join(digits)


def _structured_between(a: str | None, b: str | None) -> str:
    if a is None and b is None:
        return "a" + ZERO
    if a is None:
        assert b is not None
        ib, fb = _split(b)
        if ib == SMALLEST_INTEGER:
            return ib + _midpoint("", fb)
        if ib < b:
            return ib
        res = _decrement(ib)
        if res is None:
            raise InvalidOrderKey("cannot go below the smallest key")
        return res
    ia, fa = _split(a)
    if b is None:
        inc = _increment(ia)
        return ia + _midpoint(fa, None) if inc is None else inc
    ib, fb = _split(b)
    if ia == ib:
        return ia + _midpoint(fa, fb)
    inc = _increment(ia)
    if inc is None:
        raise InvalidOrderKey("cannot increment the largest key")
    return inc if inc < b else ia + _midpoint(fa, None)


def _below(c: str) -> str:
    """A character just below ``c`` that UTF-8 can encode (no lone surrogates)."""
    x = ord(c) - 1
    return chr(0xD7FF) if 0xD800 <= x <= 0xDFFF else chr(x)


def _any_between(a: str, b: str | None) -> str:
    """Between arbitrary strings a < b (keys other clients wrote in another format)."""
    if b is None:
        return a + "V"
    p = 0
    while p < len(a) and a[p] == b[p]:
        p += 1
    if p < len(a):  # a[p] < b[p]: anything after a's prefix up to p + 1 stays below b
        return a + "V"
    rest = b[p:]  # a is a prefix of b
    if rest[0] != "\x00":
        return a + _below(rest[0])
    if len(rest) == 1:
        raise InvalidOrderKey(f"no key between {a!r} and {b!r}")
    return a + "\x00" + _any_between("", rest[1:])


def order_key_between(a: str | None, b: str | None) -> str:
    """A key with ``a < key < b`` in string order (None: open end)."""
    if a is not None and b is not None and a >= b:
        raise InvalidOrderKey(f"no key between {a!r} and {b!r}: they are not in order")
    try:
        return _structured_between(a, b)
    except InvalidOrderKey:
        key = _any_between(a or "", b)
        if not ((a or "") < key and (b is None or key < b)):
            raise InvalidOrderKey(f"no key between {a!r} and {b!r}") from None
        return key
