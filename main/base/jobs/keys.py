"""How a key a job's options compute from its payload is stored (unique keys, concurrency and rate keys)."""

import hashlib
import json

MAX_KEY_CHARS = 200  # longer keys are stored as their SHA-256: distinct keys stay distinct, whatever their length


def key_text(value: object) -> str:
    """A key function's value as stored: a string as it is, anything else as its JSON (keys sorted), hashed when
    longer than MAX_KEY_CHARS."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_KEY_CHARS else "sha256:" + hashlib.sha256(text.encode()).hexdigest()
