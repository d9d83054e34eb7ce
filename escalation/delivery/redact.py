"""Credentials out of text a receiver sent back. HTTP gateways, webhooks and SMTP servers answer with error
text, and up to 200 characters of it are kept in the case's timeline, its state, events and logs; some echo
the request, headers included. So anything that looks like a credential is replaced with `[redacted]`
before the text is kept:

- header values of Authorization, Proxy-Authorization, Cookie and Set-Cookie (to the end of the line);
- the credential after an auth scheme: `Bearer ...`, `Basic ...`, `Digest ...`, `Token ...`;
- values of api keys, tokens, secrets, passwords, signatures, sessions and the like, as `key=value`,
  `key: value` and JSON `"key": "value"` (the name stays, so the reader knows what was there);
- user info in URLs (`https://user:pass@host`);
- blobs of 32 or more characters of hex or base64 (keys, tokens, hashes), unless plainly made of words.

It errs on the side of hiding: a word that only looks like a credential is hidden too. Pure (no I/O, no
temporalio) and linear in the text's length, since the text comes from outside.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"
# How much of a receiver's answer is kept in errors (timeline, state, events, logs).
EXCERPT = 200

_SCHEMES = r"bearer|basic|digest|token|negotiate|apikey"
# A quoted value (JSON or a Python repr), or an unquoted one up to the next separator.
_QUOTED = r'"(?:[^"\\\r\n]|\\.)*"|\'[^\'\r\n]*\''
# A quoted value inside a JSON string (a receiver quoting the JSON it received): \"...\"
_ESCAPED = r'\\"(?:[^"\\]|\\[^"])*\\"'
_UNQUOTED_CHARS = r'[^\s"\'\\;&<>(){}\[\]]'

# Headers whose whole value is a credential: hidden to the end of the line (or of the quoted value).
_HEADER = re.compile(
    r'(?P<name>(?:proxy-)?authorization|(?:set-)?cookie)(?P<sep>\\?["\']?[ \t]*[:=][ \t]*)'
    r"(?:(?P<quoted>" + _QUOTED + r")|(?P<escaped>" + _ESCAPED + r')|\\?["\']?[^\r\n"\'<>]*)',
    re.IGNORECASE,
)

# Names whose value is a credential: api_key, apikey, x-api-key, access_token, client_secret, passwd ...
_NAMES = (
    r"api[_.-]?key|access[_.-]?key|private[_.-]?key|secret|token|passw(?:or)?d|pwd|signature"
    r"|credentials?|session(?:[_.-]?id)?|auth(?!oriz|ent)|cookie"
)  # "Unauthorized: ..." is no credential
# (a whole run of name characters, taken at once: no backtracking into it, so the work stays linear)
_NAME = r"(?=[A-Za-z0-9_.-]*?(?:" + _NAMES + r"))[A-Za-z0-9_.-]++"
_SEP = r'\\?["\']?[ \t]*[:=][ \t]*'
_KEY_VALUE = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<name>" + _NAME + r")(?P<sep>" + _SEP + r")"
    r"(?:(?P<quoted>" + _QUOTED + r")|(?P<escaped>" + _ESCAPED + r")"
    # unquoted, on through a word that asks for one more ("Bearer x", "api_key: x"): all of it is the value
    r'|\\?["\']?(?:' + _UNQUOTED_CHARS + r"*?(?:" + _SCHEMES + r"|[:=])[ \t]+)*" + _UNQUOTED_CHARS + r"+)",
    re.IGNORECASE,
)

# An auth scheme and its credential, wherever it stands (not a second scheme word: "token Bearer x").
_TOKEN_CHARS = r'[^\s"\'<>,;()\[\]{}]'
_SCHEME = re.compile(
    r"(?P<name>" + _SCHEMES + r")(?P<sep>[ \t]+)"
    r"(?!\[redacted\]|" + _TOKEN_CHARS + r"*(?:" + _SCHEMES + r")[ \t])" + _TOKEN_CHARS + r"+",
    re.IGNORECASE,
)

# scheme://user:password@host (or //user@host)
_USERINFO = re.compile(r'(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,30}:)?//[^/\s@?#"\'<>]+@')

# 32+ characters of hex or base64 (standard or URL-safe, with padding).
_BLOB = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def _plain_words(text: str) -> bool:
    """An identifier such as `followup_checkin_reminder` or `CustomerNotificationSettings`: letters only,
    in words of 4 to 20 letters on average and at most 20 (random letters make many short ones)."""
    if any(c.isdigit() or c in "+/=" for c in text):
        return False
    words = [w for part in re.split(r"[_-]", text) for w in _WORD.findall(part)]
    letters = sum(len(w) for w in words)
    return (
        bool(words)
        and letters == sum(c.isalpha() for c in text)
        and max(map(len, words)) <= 20
        and letters / len(words) >= 4
    )


def _value(m: re.Match[str]) -> str:
    if m["escaped"]:
        return f'{m["name"]}{m["sep"]}\\"{REDACTED}\\"'
    quoted = m["quoted"]
    return f"{m['name']}{m['sep']}" + (f'"{REDACTED}"' if quoted and quoted.startswith('"') else REDACTED)


def redact(text: str) -> str:
    """`text` with everything that looks like a credential replaced by `[redacted]`."""
    text = _USERINFO.sub(lambda m: f"{m['scheme'] or ''}//{REDACTED}@", text)
    text = _HEADER.sub(_value, text)
    text = _KEY_VALUE.sub(_value, text)
    text = _SCHEME.sub(lambda m: f"{m['name']}{m['sep']}{REDACTED}", text)
    return _BLOB.sub(lambda m: m.group() if _plain_words(m.group()) else REDACTED, text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """What is kept of a receiver's answer: redacted first (so no credential is cut in half and missed),
    then on one line (a reply's line breaks must not forge lines in a brief or a log), at most `limit`
    characters."""
    # A window many times the limit bounds the work and leaves enough after redaction. Where it cuts the
    # text, it ends before the last whitespace, so no credential is cut short of looking like one.
    window = text[: limit * 50]
    if len(text) > len(window):
        window = window[: max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"), 0)] or window
    kept = redact(window)
    return " ".join(_CONTROL.sub(" ", kept).split())[:limit]
