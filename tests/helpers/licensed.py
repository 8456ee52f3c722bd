"""Licence fields for test images (no tests here): an XMP packet with ``cc:license``,
``xmpRights`` and ``dc:rights``, and an EXIF block with Copyright and Artist, as Pillow
writes them into real JPEG, PNG and WebP files."""

from __future__ import annotations

from PIL import Image


def xmp_packet(license_url: str = "https://creativecommons.org/publicdomain/zero/1.0/",
               usage: str = "Free to use with attribution") -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:cc="http://creativecommons.org/ns#" '
        'xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmpRights:WebStatement="https://example.org/rights" xmpRights:Marked="True">'
        f'<cc:license rdf:resource="{license_url}"/>'
        f'<xmpRights:UsageTerms><rdf:Alt><rdf:li xml:lang="x-default">{usage}</rdf:li>'
        '</rdf:Alt></xmpRights:UsageTerms>'
        '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">(c) Jane Doe</rdf:li></rdf:Alt>'
        '</dc:rights></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def rights_exif(copyright_text: str = "(c) 2024 Jane Doe", artist: str = "Jane Doe") -> Image.Exif:
    exif = Image.Exif()
    exif[0x8298] = copyright_text
    exif[0x013B] = artist
    return exif
