"""Licence signals: the SPDX normalisation table, the sample's licence from its signals, the
page's signals (HTML and WAT), and the image's own (EXIF, IPTC, XMP) from real image files
written by Pillow -- hostile packets included."""

from __future__ import annotations

import io
import struct

import lxml.html
import pytest
from helpers.licensed import rights_exif, xmp_packet
from PIL import Image, PngImagePlugin

from pipeline.core import licenses as lic
from pipeline.core.image_rights import MAX_XMP_BYTES, image_license_signals, xmp_signals
from pipeline.core.images import open_image
from pipeline.crawl.html_extract import extract_page_info
from pipeline.crawl.page_licenses import page_license_signals
from pipeline.crawl.wat import wat_license_signals

NORMALIZE = [
    # Creative Commons URLs: every version, element set and port
    ("https://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
    ("http://creativecommons.org/licenses/by-sa/4.0/legalcode", "CC-BY-SA-4.0"),
    ("//creativecommons.org/licenses/by-nc/4.0/deed.de", "CC-BY-NC-4.0"),
    ("https://www.creativecommons.org/licenses/by-nc-sa/3.0/", "CC-BY-NC-SA-3.0"),
    ("https://creativecommons.org/licenses/by-nc-nd/2.5/", "CC-BY-NC-ND-2.5"),
    ("https://creativecommons.org/licenses/by-nd/2.0/", "CC-BY-ND-2.0"),
    ("https://creativecommons.org/licenses/by/1.0/", "CC-BY-1.0"),
    ("https://creativecommons.org/licenses/by-nd-nc/1.0/", "CC-BY-NC-ND-1.0"),
    ("https://creativecommons.org/licenses/nc-sa/1.0/", "LicenseRef-CC-NC-SA-1.0"),
    ("https://creativecommons.org/licenses/by-sa/3.0/de/", "CC-BY-SA-3.0-DE"),
    ("https://creativecommons.org/licenses/by/3.0/igo/", "CC-BY-3.0-IGO"),
    ("https://creativecommons.org/licenses/by-nc-sa/2.0/uk/", "CC-BY-NC-SA-2.0-UK"),
    ("https://creativecommons.org/licenses/by-sa/2.1/jp/deed.ja", "CC-BY-SA-2.1-JP"),
    ("https://creativecommons.org/licenses/by/3.0/us/", "CC-BY-3.0-US"),
    ("https://creativecommons.org/licenses/by-sa/3.0/es/", "LicenseRef-CC-BY-SA-3.0-ES"),
    ("https://creativecommons.org/licenses/by/2.1/", "LicenseRef-CC-BY-2.1"),
    ("https://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
    ("https://creativecommons.org/publicdomain/mark/1.0/", "CC-PDM-1.0"),
    ("https://creativecommons.org/licenses/publicdomain/", "CC-PDDC"),
    ("Licensed under https://creativecommons.org/licenses/by/4.0/ since 2020", "CC-BY-4.0"),
    # ids, short names and titles
    ("CC-BY-4.0", "CC-BY-4.0"),
    ("cc-by-sa-4.0", "CC-BY-SA-4.0"),
    ("CC BY-NC-SA 4.0", "CC-BY-NC-SA-4.0"),
    ("CC BY 2.0 by Jane Doe", "CC-BY-2.0"),
    ("CC BY-SA 3.0 DE", "CC-BY-SA-3.0-DE"),
    ("CC-BY-NC-SA-2.0-FR", "CC-BY-NC-SA-2.0-FR"),
    ("CC0", "CC0-1.0"),
    ("CC0 1.0 Universal", "CC0-1.0"),
    ("cc-zero", "CC0-1.0"),
    ("Public Domain Mark 1.0", "CC-PDM-1.0"),
    ("CC-PDDC", "CC-PDDC"),
    ("Creative Commons Attribution 4.0 International", "CC-BY-4.0"),
    ("This work is licensed under a Creative Commons Attribution-NonCommercial-NoDerivatives "
     "4.0 International License.", "CC-BY-NC-ND-4.0"),
    ("Creative Commons Attribution-ShareAlike 3.0 Unported", "CC-BY-SA-3.0"),
    ("Creative Commons Attribution-NoDerivs 2.5 Generic", "CC-BY-ND-2.5"),
    # unknown: kept as raw text by resolve(), None here
    ("CC BY", None),
    ("(c) 2021 Jane Doe. All rights reserved.", None),
    ("https://example.com/license", None),
    ("https://creativecommons.org/licenses/by-nd-sa/4.0/", None),
    ("https://creativecommons.org/licenses/by/5.0/", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize("raw,expected", NORMALIZE)
def test_normalize_table(raw, expected):
    assert lic.normalize(raw) == expected


def test_resolve_prefers_the_image_and_keeps_unknown_text():
    page = [lic.signal(lic.REL_LICENSE, "https://creativecommons.org/licenses/by/4.0/")]
    image = [lic.signal(lic.XMP_CC_LICENSE, "https://creativecommons.org/publicdomain/zero/1.0/")]
    assert lic.resolve(page) == "CC-BY-4.0"
    assert lic.resolve(page + image) == "CC0-1.0"  # what the image says of itself first
    rights = [lic.signal(lic.EXIF_COPYRIGHT, "  (c) Jane Doe, all rights reserved "),
              lic.signal(lic.EXIF_ARTIST, "Jane Doe")]
    assert lic.resolve(rights) == "(c) Jane Doe, all rights reserved"
    assert lic.resolve(rights + page) == "CC-BY-4.0"  # a known licence beats free text
    assert lic.resolve([lic.signal(lic.EXIF_ARTIST, "Jane Doe")]) is None  # no licence
    assert lic.resolve([]) is None


def test_signal_is_bounded_and_splits_back():
    value = lic.signal(lic.DC_RIGHTS, "a=b  \n c" + "x" * 10_000)
    kind, raw = lic.split_signal(value)
    assert kind == lic.DC_RIGHTS and raw.startswith("a=b c") and len(raw) == lic.MAX_SIGNAL_CHARS


def test_parse_license_list():
    assert lic.parse_license_list("CC0-1.0, cc-by-4.0,https://creativecommons.org/licenses/"
                                  "by-sa/4.0/,CC0-1.0") == ("CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0")
    assert lic.parse_license_list("LicenseRef-mine") == ("LicenseRef-mine",)
    with pytest.raises(ValueError):
        lic.parse_license_list(" , ")


PAGE = """<html><head>
<link rel="license" href="https://creativecommons.org/licenses/by-sa/4.0/">
<meta name="DC.rights" content="Copyright 2020 Example Museum">
<meta name="dcterms.license" content="https://creativecommons.org/licenses/by-sa/4.0/">
<base href="https://example.org/gallery/"></head><body>
<img src="a.jpg" alt="a cat">
<a rel="nofollow license" href="/terms">terms</a>
<a href="https://creativecommons.org/licenses/by/4.0/"><img src="badge.png" alt=""></a>
<a href="https://example.org/other">other</a>
</body></html>"""


def test_page_signals_every_kind_in_document_order():
    doc = lxml.html.document_fromstring(PAGE)
    assert page_license_signals(doc, "https://example.org/gallery/") == (
        "link_license=https://creativecommons.org/licenses/by-sa/4.0/",
        "dc_rights=Copyright 2020 Example Museum",
        "dcterms_license=https://creativecommons.org/licenses/by-sa/4.0/",
        "rel_license=https://example.org/terms",
        "cc_url=https://creativecommons.org/licenses/by/4.0/",
    )
    info = extract_page_info(PAGE, "https://example.org/gallery/")
    assert info.pairs == [("https://example.org/gallery/a.jpg", ("a cat",))]
    assert info.licenses == page_license_signals(doc, "https://example.org/gallery/")
    assert lic.resolve(info.licenses) == "CC-BY-SA-4.0"


def test_page_signals_are_capped():
    links = "".join(f'<a rel="license" href="/l{i}">l</a>' for i in range(1000))
    doc = lxml.html.document_fromstring(f"<html><body>{links}</body></html>")
    assert len(page_license_signals(doc, "https://e.org/")) == lic.MAX_SIGNALS


def test_wat_signals():
    record = {"Envelope": {
        "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": "https://e.org/p"},
        "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": {
            "Head": {"Metas": [{"name": "dc.rights", "content": "CC0"}, {"name": 3},
                               "junk"],
                     "Link": [{"path": "LINK@/href", "url": "/lic", "rel": "license"}]},
            "Links": [{"path": "A@/href", "url": "https://creativecommons.org/licenses/by/3.0/",
                       "rel": "license"},
                      {"path": "A@/href", "url": "https://creativecommons.org/publicdomain/"
                                                 "mark/1.0/"},
                      {"path": "IMG@/src", "url": "/a.jpg", "alt": "a"},
                      {"path": "A@/href", "url": 7, "rel": "license"}]}}}}}
    assert wat_license_signals(record) == (
        "dc_rights=CC0", "link_license=https://e.org/lic",
        "rel_license=https://creativecommons.org/licenses/by/3.0/",
        "cc_url=https://creativecommons.org/publicdomain/mark/1.0/")
    assert wat_license_signals({"Envelope": []}) == ()
    assert wat_license_signals("not a dict") == ()


# -- the image's own fields, from real files ---------------------------------------------------

def photo() -> Image.Image:
    return Image.linear_gradient("L").resize((300, 200)).convert("RGB")


def save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def signals_of(data: bytes) -> list[str]:
    opened = open_image(data)
    with opened.image:
        return image_license_signals(opened.image)


EXPECTED_XMP = [
    "xmp_cc_license=https://creativecommons.org/publicdomain/zero/1.0/",
    "xmp_web_statement=https://example.org/rights",
    "xmp_usage_terms=Free to use with attribution",
    "xmp_dc_rights=(c) Jane Doe",
]
EXPECTED_EXIF = ["exif_copyright=(c) 2024 Jane Doe", "exif_artist=Jane Doe"]


def test_jpeg_exif_and_xmp():
    data = save(photo(), "JPEG", exif=rights_exif(), xmp=xmp_packet())
    assert signals_of(data) == EXPECTED_XMP + EXPECTED_EXIF
    assert lic.resolve(signals_of(data)) == "CC0-1.0"


def test_png_itxt_xmp_and_exif():
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp_packet().decode("utf-8"))
    data = save(photo(), "PNG", pnginfo=info, exif=rights_exif())
    assert signals_of(data) == EXPECTED_XMP + EXPECTED_EXIF


def test_webp_exif_and_xmp():
    data = save(photo(), "WEBP", exif=rights_exif(), xmp=xmp_packet())
    assert signals_of(data) == EXPECTED_XMP + EXPECTED_EXIF


def test_tiff_exif():
    tags = {0x8298: "(c) 2024 Jane Doe", 0x013B: "Jane Doe"}
    data = save(photo(), "TIFF", tiffinfo=tags)
    assert signals_of(data) == EXPECTED_EXIF


def _with_app13(jpeg: bytes, copyright_text: str) -> bytes:
    """A JPEG with a Photoshop APP13 block holding an IPTC copyright notice (2:116): what
    Photoshop and exiftool write; Pillow reads it but cannot write it."""
    text = copyright_text.encode("utf-8")
    iptc = b"\x1c\x02\x74" + struct.pack(">H", len(text)) + text
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iptc)) \
        + iptc + (b"\x00" if len(iptc) % 2 else b"")
    payload = b"Photoshop 3.0\x00" + resource
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def test_jpeg_iptc_copyright_notice():
    data = _with_app13(save(photo(), "JPEG"), "Copyright 2019 Example Press")
    assert signals_of(data) == ["iptc_copyright=Copyright 2019 Example Press"]
    assert lic.resolve(signals_of(data)) == "Copyright 2019 Example Press"


def test_plain_image_has_no_signals():
    assert signals_of(save(photo(), "JPEG")) == []
    assert signals_of(save(photo(), "PNG")) == []


def test_hostile_xmp_is_bounded():
    laughs = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
              + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode()
                         for i in range(8))
              + b']><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
              b'1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/'
              b'elements/1.1/"><dc:rights>&i;</dc:rights></rdf:Description></rdf:RDF>'
              b'</x:xmpmeta>')
    found = xmp_signals(laughs)  # entities are not expanded: no billion laughs
    assert all(len(s) <= len("xmp_dc_rights=") + lic.MAX_SIGNAL_CHARS for s in found)
    huge = xmp_packet(usage="x" * MAX_XMP_BYTES)
    assert xmp_signals(huge) == []  # over the bound: ignored, not parsed
    assert xmp_signals(b"<x:xmpmeta><not xml") == []
    many = xmp_packet().replace(b"<cc:license", b"<cc:license rdf:resource='r'/>" * 5000
                                + b"<cc:license")
    assert len(xmp_signals(many)) <= lic.MAX_SIGNALS + 2
    # a broken EXIF block and a broken XMP packet in a real JPEG: no signal, no error
    data = save(photo(), "JPEG", xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF")
    assert signals_of(data) == []


def test_licenses_rule_comes_before_the_pixel_guard():
    from pipeline.shards.filters import FilterConfig, filter_sample

    config = FilterConfig(preset="none", min_words=0, min_chars=0, languages=(), min_side=0,
                          max_aspect=None, max_pixels=1000, licenses=("CC0-1.0", "CC-BY-4.0"))
    sample = {"texts": ["a cat"], "caption": "a cat", "original_width": 20,
              "original_height": 20, "original_bytes": 100}
    assert filter_sample({**sample, "license": "CC-BY-4.0"}, config)[1] is None
    assert filter_sample({**sample, "license": "CC-BY-NC-4.0"}, config)[1] == "license"
    assert filter_sample({**sample, "license": None}, config)[1] == "license"
    big = {**sample, "original_width": 100, "original_height": 100}
    assert filter_sample({**big, "license": None}, config)[1] == "license"  # a rule first
    assert filter_sample({**big, "license": "CC0-1.0"}, config)[1] == "max_pixels"
    no_rule = {**vars(config), "licenses": ()}
    assert filter_sample({**sample, "license": None}, FilterConfig(**no_rule))[1] is None
