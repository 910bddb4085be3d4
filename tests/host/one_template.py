"""A strict parser for OpenNebula template text, the format monitord parses probe output in.

It follows OpenNebula's template grammar (src/template/template_syntax.y): lines of
``NAME = value`` or ``NAME = [ A = value, B = value ]``, values either double-quoted with
backslash escapes or a single unquoted word, ``#`` comments. Anything else (an unquoted value
with spaces, a stray bracket, an unterminated quote) raises TemplateSyntaxError, which is
what would make monitord reject the payload.
"""

import re

_NAME = re.compile(r"[A-Za-z0-9_]+")
_QUOTED = re.compile(r'"((?:\\.|[^"\\])*)"', re.S)
_WORD = re.compile(r'[^\s=#\[\],"]+')
_BLANK = re.compile(r"[ \t]*")


class TemplateSyntaxError(ValueError):
    pass


class _Cursor:
    def __init__(self, text):
        self.text, self.pos = text, 0

    def skip_blank(self, newlines=False):
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self.pos += 1
            elif char == "#" and newlines:
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                break

    def peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char):
        self.skip_blank(newlines=False)
        if self.peek() != char:
            self.error("expected %r" % char)
        self.pos += 1

    def match(self, pattern):
        found = pattern.match(self.text, self.pos)
        if not found or found.end() == self.pos:
            return None
        self.pos = found.end()
        return found

    def error(self, message):
        line = self.text.count("\n", 0, self.pos) + 1
        raise TemplateSyntaxError("line %d: %s near %r" % (line, message, self.text[self.pos:self.pos + 30]))


def _value(cursor):
    cursor.skip_blank()
    quoted = cursor.match(_QUOTED)
    if quoted:
        return re.sub(r"\\(.)", r"\1", quoted.group(1))
    word = cursor.match(_WORD)
    if word:
        return word.group(0)
    cursor.error("expected a value")


def parse_template(text):
    """Return a list of (NAME, value) where value is a str or a dict for vector attributes."""
    cursor = _Cursor(text)
    attributes = []
    while True:
        cursor.skip_blank(newlines=True)
        if cursor.pos >= len(text):
            return attributes
        name = cursor.match(_NAME)
        if not name:
            cursor.error("expected an attribute name")
        cursor.expect("=")
        cursor.skip_blank()
        if cursor.peek() == "[":
            cursor.pos += 1
            vector = {}
            while True:
                cursor.skip_blank(newlines=True)
                key = cursor.match(_NAME)
                if not key:
                    cursor.error("expected a vector attribute name")
                cursor.expect("=")
                vector[key.group(0).upper()] = _value(cursor)
                cursor.skip_blank(newlines=True)
                if cursor.peek() == ",":
                    cursor.pos += 1
                    continue
                if cursor.peek() == "]":
                    cursor.pos += 1
                    break
                cursor.error("expected ',' or ']'")
            attributes.append((name.group(0).upper(), vector))
        else:
            attributes.append((name.group(0).upper(), _value(cursor)))
        cursor.skip_blank()
        if cursor.peek() == "#":
            cursor.skip_blank(newlines=True)
        elif cursor.peek() not in ("\n", "\r", ""):
            cursor.error("unexpected text after the value")


def as_dict(attributes):
    """Single-valued attributes as a dict (fails on duplicates, which would be ambiguous)."""
    result = {}
    for name, value in attributes:
        if name in result:
            raise TemplateSyntaxError("duplicate attribute %s" % name)
        result[name] = value
    return result
