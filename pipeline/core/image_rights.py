"""Licence and rights fields embedded in an image, read from a lazily opened PIL image
(:func:`pipeline.core.images.open_image`: header parsed, no pixel decoded) -- the bytes the
downloader already holds, no other request.

- EXIF ``Copyright`` (0x8298) and ``Artist`` (0x013B), from the EXIF block PIL read with the
  header (JPEG APP1, WebP, TIFF; a PNG's ``eXIf`` chunk when it comes before the pixels);
- IPTC copyright notice (2:116), from a JPEG's Photoshop APP13 block;
- XMP ``cc:license``, ``xmpRights:WebStatement``, ``xmpRights:UsageTerms`` and ``dc:rights``
  (attribute, element text, ``rdf:resource`` or ``rdf:Alt``/``rdf:li`` values), from a
  JPEG/WebP XMP packet, a PNG ``iTXt`` ``XML:com.adobe.xmp`` chunk or TIFF tag 700.

Bounded on hostile input: the header blocks are PIL's (a JPEG segment is at most 64 KiB, a
PNG text chunk at most PIL's ``MAX_TEXT_CHUNK``), an XMP packet over :data:`MAX_XMP_BYTES`
is ignored, XML is parsed without DTDs, entities or network, at most
:data:`~pipeline.core.licenses.MAX_SIGNALS` signals are kept, each cut to
:data:`~pipeline.core.licenses.MAX_SIGNAL_CHARS`, and any error in a block drops that block
only (the image is not judged by its metadata).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import lxml.etree
from PIL import Image, ImageFile, IptcImagePlugin

from pipeline.core import licenses as lic

MAX_XMP_BYTES = 256 * 1024
_COPYRIGHT, _ARTIST = 0x8298, 0x013B
_IPTC_COPYRIGHT = (2, 116)
_XMP_TIFF_TAG = 700
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
# (namespace, local name) -> signal kind
_XMP_FIELDS = {
    ("http://creativecommons.org/ns#", "license"): lic.XMP_CC_LICENSE,
    ("http://ns.adobe.com/xap/1.0/rights/", "WebStatement"): lic.XMP_WEB_STATEMENT,
    ("http://ns.adobe.com/xap/1.0/rights/", "UsageTerms"): lic.XMP_USAGE_TERMS,
    ("http://purl.org/dc/elements/1.1/", "rights"): lic.XMP_DC_RIGHTS,
}
_PARSER = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                               huge_tree=False, remove_comments=True, remove_pis=True)


def _text(value: object) -> str:
    """An EXIF/IPTC value as text: bytes as UTF-8 (Latin-1 where that fails), NULs and
    surrounding space dropped."""
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    if isinstance(value, bytes):
        try:
            return _text(value.decode("utf-8"))
        except UnicodeDecodeError:
            return _text(value.decode("latin-1"))
    return str(value).replace("\x00", " ").strip() if value is not None else ""


def _exif(image: Image.Image) -> Image.Exif | None:
    if image.format == "PNG":  # getexif() would decode a PNG to look after the pixels
        raw = image.info.get("exif")
        if not raw:
            return None
        exif = Image.Exif()
        exif.load(raw)
        return exif
    return image.getexif()


def _exif_signals(image: Image.Image) -> Iterator[str]:
    exif = _exif(image)
    if exif is None:
        return
    for tag, kind in ((_COPYRIGHT, lic.EXIF_COPYRIGHT), (_ARTIST, lic.EXIF_ARTIST)):
        text = _text(exif.get(tag))
        if text:
            yield lic.signal(kind, text)


def _iptc_signals(image: Image.Image) -> Iterator[str]:
    if not isinstance(image, ImageFile.ImageFile) or image.format not in ("JPEG", "MPO") \
            or "photoshop" not in image.info:
        return
    info = IptcImagePlugin.getiptcinfo(image) or {}
    text = _text(info.get(_IPTC_COPYRIGHT))
    if text:
        yield lic.signal(lic.IPTC_COPYRIGHT, text)


def _xmp_packet(image: Image.Image) -> bytes | None:
    for key in ("xmp", "XML:com.adobe.xmp"):
        value = image.info.get(key)
        if value:
            return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    tags = getattr(image, "tag_v2", None)
    if tags is not None and _XMP_TIFF_TAG in tags:
        value = tags[_XMP_TIFF_TAG]
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return None


def _values(element: lxml.etree._Element) -> Iterator[str]:
    """The values an XMP property element holds: ``rdf:resource``, its ``rdf:li`` items
    (``rdf:Alt``/``Bag``/``Seq``), else its text."""
    resource = element.get(f"{{{_RDF}}}resource")
    if resource:
        yield resource
        return
    items = element.findall(f".//{{{_RDF}}}li")
    if items:
        for item in items:
            text = "".join(item.itertext())
            if text.strip():
                yield text
        return
    text = element.text or ""
    if text.strip():
        yield text


def xmp_signals(packet: bytes) -> list[str]:
    """The licence signals of one XMP packet (empty for one too large or not XML)."""
    if len(packet) > MAX_XMP_BYTES:
        return []
    start = packet.find(b"<x:xmpmeta")
    start = start if start >= 0 else packet.find(b"<rdf:RDF")
    if start < 0:
        return []
    end = packet.rfind(b"</x:xmpmeta>")
    body = packet[start:end + len(b"</x:xmpmeta>")] if end > start else packet[start:]
    try:
        root = lxml.etree.fromstring(body, _PARSER)
    except (lxml.etree.XMLSyntaxError, ValueError):
        return []
    found: list[str] = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():  # rdf:Description's shorthand
            kind = _XMP_FIELDS.get(_split(name))
            if kind:
                found.append(lic.signal(kind, value))
        kind = _XMP_FIELDS.get(_split(element.tag))
        if kind:
            found.extend(lic.signal(kind, v) for v in _values(element))
        if len(found) >= lic.MAX_SIGNALS:
            break
    return found


def _split(name: str) -> tuple[str, str]:
    if name.startswith("{"):
        namespace, _, local = name[1:].partition("}")
        return namespace, local
    return "", name


def image_license_signals(image: Image.Image) -> list[str]:
    """The licence signals embedded in ``image`` (opened, not decoded), in
    :data:`~pipeline.core.licenses.IMAGE_KINDS` order, distinct."""
    found: list[str] = []
    for block in (_xmp_block, _exif_signals, _iptc_signals):
        with contextlib.suppress(Exception):  # a broken block is ignored, as viewers do
            found.extend(block(image))
    ranked = sorted(dict.fromkeys(found),
                    key=lambda s: lic.IMAGE_KINDS.index(lic.split_signal(s)[0]))
    return ranked[:lic.MAX_SIGNALS]


def _xmp_block(image: Image.Image) -> list[str]:
    packet = _xmp_packet(image)
    return xmp_signals(packet) if packet else []
