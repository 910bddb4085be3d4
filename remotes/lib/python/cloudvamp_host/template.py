"""OpenNebula template text, as monitord parses it (``KEY=value`` and ``KEY=[A="v", ...]``).

Everything we print is quoted, because an unquoted value with a space or a bracket makes
the whole probe payload unparsable and puts the host in ERROR.
"""

import base64


def quote(value):
    """Quote a value for a template: backslash and double quote are escaped."""
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def attribute(name, value):
    return "%s=%s" % (name, quote(value))


def vector(name, pairs):
    """``NAME=[ A="x", B="y" ]`` on one line; ``pairs`` is a sequence of (key, value)."""
    return "%s=[ %s ]" % (name, ", ".join("%s=%s" % (key, quote(value)) for key, value in pairs))


def monitor_base64(pairs):
    """The VM probe's inner MONITOR field: base64 of ``KEY="value"`` lines (as kvm's poll.rb)."""
    text = "\n".join(attribute(key, value) for key, value in pairs)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
