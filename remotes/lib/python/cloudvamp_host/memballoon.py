"""Put balloon options on a libvirt domain XML by inserting text, never by re-serialising.

The deployment file is OpenNebula's (``LibVirtDriverKVM.cc``) plus whatever RAW data an
admin added; re-writing it through a DOM would reorder attributes, re-quote values and drop
formatting that the stock deploy script and people reading the file rely on. So the file is
parsed only to find byte offsets (expat), and the change is a few inserted bytes inside the
``<memballoon>`` element, or one new ``<memballoon>`` element before ``</devices>`` when the
file has none (OpenNebula writes none; libvirt then adds a default virtio balloon, which is
exactly what the inserted element is, plus the options).

Explicit choices in the file win: an attribute or a ``<stats>`` child that is already
there is left as it is.
"""

import xml.parsers.expat
from dataclasses import dataclass
from typing import Optional, Tuple

VIRTIO_MODELS = ("virtio", "virtio-transitional", "virtio-non-transitional")


class NoBalloonEdit(Exception):
    """The file is left as it is; the message says why (one log line)."""


@dataclass(frozen=True)
class BalloonOptions:
    autodeflate: bool
    free_page_reporting: bool
    stats_period_s: Optional[int]    # None: do not add a <stats> child

    @property
    def attributes(self) -> Tuple[Tuple[str, str], ...]:
        wanted = []
        if self.autodeflate:
            wanted.append(("autodeflate", "on"))
        if self.free_page_reporting:
            wanted.append(("freePageReporting", "on"))
        return tuple(wanted)

    @property
    def empty(self):
        return not self.attributes and self.stats_period_s is None


@dataclass
class _Balloon:
    start: int                 # offset of "<memballoon"
    attributes: dict
    end_tag: int = -1          # offset of "</memballoon>", or just past "/>" when empty
    has_stats: bool = False


@dataclass
class _Scan:
    root: str = ""
    devices_end: int = -1      # offset of the first "</devices>" under <domain>
    balloons: tuple = ()


def _scan(xml_bytes):
    parser = xml.parsers.expat.ParserCreate()
    scan, stack, balloons = _Scan(), [], []

    def start(name, attributes):
        if not stack:
            scan.root = name
        stack.append(name)
        if stack == ["domain", "devices", "memballoon"]:
            balloons.append(_Balloon(parser.CurrentByteIndex, dict(attributes)))
        elif stack == ["domain", "devices", "memballoon", "stats"] and balloons:
            balloons[-1].has_stats = True

    def end(_name):
        if stack == ["domain", "devices", "memballoon"]:
            balloons[-1].end_tag = parser.CurrentByteIndex
        elif stack == ["domain", "devices"] and scan.devices_end < 0:
            scan.devices_end = parser.CurrentByteIndex
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(xml_bytes, True)
    except xml.parsers.expat.ExpatError as error:
        raise NoBalloonEdit("the deployment file is not well-formed XML (%s)" % error) from None
    scan.balloons = tuple(balloons)
    return scan


def _start_tag_close(xml_bytes, start):
    """Offset of the '>' that closes the start tag at ``start`` (quotes may hold '>')."""
    quote = None
    for offset in range(start, len(xml_bytes)):
        char = xml_bytes[offset:offset + 1]
        if quote:
            if char == quote:
                quote = None
        elif char in (b"'", b'"'):
            quote = char
        elif char == b">":
            return offset
    raise NoBalloonEdit("unterminated <memballoon> start tag")


def _attributes_text(pairs):
    return "".join(" %s='%s'" % pair for pair in pairs).encode("ascii")


def _stats_text(period_s):
    return ("<stats period='%d'/>" % period_s).encode("ascii")


def _edit_existing(xml_bytes, balloon, options):
    model = balloon.attributes.get("model", "")
    if model not in VIRTIO_MODELS:
        raise NoBalloonEdit("<memballoon model='%s'> is not a virtio balloon" % model)
    missing = tuple(pair for pair in options.attributes if pair[0] not in balloon.attributes)
    add_stats = options.stats_period_s is not None and not balloon.has_stats
    if not missing and not add_stats:
        raise NoBalloonEdit("<memballoon> already has every option asked for")
    close = _start_tag_close(xml_bytes, balloon.start)
    self_closing = xml_bytes[close - 1:close] == b"/"
    tag_end = close - 1 if self_closing else close          # where attributes go
    inserted = _attributes_text(missing)
    if self_closing and add_stats:
        # <memballoon .../> -> <memballoon ...><stats .../></memballoon>
        tail = b">" + _stats_text(options.stats_period_s) + b"</memballoon>"
        return xml_bytes[:tag_end] + inserted + tail + xml_bytes[close + 1:], missing, add_stats
    after_tag = _stats_text(options.stats_period_s) if add_stats else b""
    return (xml_bytes[:tag_end] + inserted + xml_bytes[tag_end:close + 1] + after_tag
            + xml_bytes[close + 1:]), missing, add_stats


def _insert_new(xml_bytes, devices_end, options):
    """A whole <memballoon> line before </devices>, indented like its siblings."""
    line_start = xml_bytes.rfind(b"\n", 0, devices_end) + 1
    indent = xml_bytes[line_start:devices_end]
    element = b"<memballoon model='virtio'" + _attributes_text(options.attributes)
    if options.stats_period_s is not None:
        element += b">" + _stats_text(options.stats_period_s) + b"</memballoon>"
    else:
        element += b"/>"
    if line_start > 0 and not indent.strip():
        child_indent = indent + (b"\t" if b"\t" in indent or not indent else b"  ")
        new = xml_bytes[:line_start] + child_indent + element + b"\n" + xml_bytes[line_start:]
    else:
        new = xml_bytes[:devices_end] + element + xml_bytes[devices_end:]
    return new, options.attributes, options.stats_period_s is not None


def set_balloon_options(xml_bytes, options):
    """Return (new bytes, one-line summary) or raise NoBalloonEdit with the reason."""
    if options.empty:
        raise NoBalloonEdit("every balloon option is off")
    scan = _scan(xml_bytes)
    if scan.root != "domain":
        raise NoBalloonEdit("the deployment file is not a libvirt <domain> (root <%s>)" % scan.root)
    if len(scan.balloons) > 1:
        raise NoBalloonEdit("the deployment file has %d <memballoon> elements" % len(scan.balloons))
    if scan.balloons:
        new, attributes, stats = _edit_existing(xml_bytes, scan.balloons[0], options)
        where = "set on its <memballoon>"
    elif scan.devices_end >= 0:
        new, attributes, stats = _insert_new(xml_bytes, scan.devices_end, options)
        where = "added as a virtio <memballoon> (libvirt's default balloon)"
    else:
        raise NoBalloonEdit("the deployment file has no <devices> element")
    _scan(new)  # never hand the stock deploy a file we broke
    parts = ["%s='%s'" % pair for pair in attributes]
    if stats:
        parts.append("<stats period='%d'/>" % options.stats_period_s)
    return new, "%s %s" % (", ".join(parts), where)
