"""The network layer's header parsers on hostile values (issue 21 item 1): the cases found
(``²``/``³``/``¹`` -- bytes 0xB2/0xB3/0xB9 read as latin-1 -- which ``str.isdigit()``
accepts and ``int()`` refuses; a Retry-After date whose zone offset overflows ``datetime``;
a Location no URL parser reads), then property tests: every parser, fed arbitrary text
(and arbitrary bytes read as latin-1, as http.client reads header bytes), returns a value or
raises the network layer's own error type (:class:`FetchError`, or the guard's
:class:`BlockedURLError`) -- never anything else."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from urllib3 import HTTPHeaderDict

from pipeline.core.net import BlockedURLError, FetchError, check_url
from pipeline.core.net.headers import (
    MAX_RETRY_AFTER,
    TOO_LARGE,
    content_length,
    http_date,
    parse_digits,
    redirect_target,
    retry_after_seconds,
    x_robots_forbids,
)
from pipeline.core.net.robots import RobotsRules, crawl_delays
from pipeline.crawl.html_extract import charset_from_content_type, decode_html
from pipeline.crawl.warc_source import is_html

NOW = 1_700_000_000.0
SUPERSCRIPTS = ("\xb2", "\xb3", "\xb9", "1\xb2", "\xb9\xb2\xb3")  # ² ³ ¹ as latin-1 reads them

# header values as http.client hands them over: any byte but CR/LF, decoded as latin-1
latin1_values = hs.binary(max_size=80).map(lambda b: b.decode("latin-1").replace("\r", "")
                                           .replace("\n", ""))
values = hs.one_of(latin1_values, hs.text(max_size=80))
digit_like = hs.text(alphabet="0123456789 \t,+-_.\xb2\xb3\xb9\u0663\uff11", max_size=30)


def headers(**fields: str) -> HTTPHeaderDict:
    return HTTPHeaderDict({k.replace("_", "-"): v for k, v in fields.items()})


# ---------------------------------------------------------------- the cases found


@pytest.mark.parametrize("value", SUPERSCRIPTS)
def test_superscript_digits_are_no_content_length(value):
    assert value.isdigit()  # what fooled the old parser
    with pytest.raises(FetchError) as info:
        content_length(headers(Content_Length=value))
    assert info.value.reason == "bad_response" and info.value.status == "failed_to_download"
    assert str(info.value) == "invalid Content-Length header"


@pytest.mark.parametrize("value", SUPERSCRIPTS)
def test_superscript_digits_are_no_retry_after(value):
    assert retry_after_seconds(value, NOW) is None


@pytest.mark.parametrize("value", [
    "Wed, 21 Oct 2015 07:28:00 +99999999999999999999",  # OverflowError in email.utils
    "Wed, 21 Oct 2015 07:28:00 -99999999999999",
    "Wed, 21 Oct 2015 07:28:00 +9999",  # a zone beyond a day
    "Wed, 21 Oct 99999 07:28:00 GMT",
    "Wed, 21 Oct 2015 99:99:99 GMT",
    "Wed, 21 Oct 2015 07:28:00 GMT" + " " * 100,
    "Wed, 21 \xb9ct 2015 07:28:00 GMT",
])
def test_hostile_retry_after_dates_are_ignored(value):
    assert retry_after_seconds(value, NOW) is None or retry_after_seconds(value, NOW) == 0.0


def test_retry_after_values_that_hold():
    assert retry_after_seconds("3", NOW) == 3.0
    assert retry_after_seconds(" 007 ", NOW) == 7.0
    assert retry_after_seconds("9" * 5000, NOW) == MAX_RETRY_AFTER  # no int() of 5000 digits
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0  # past
    assert retry_after_seconds("Tue, 14 Nov 2023 22:13:20 GMT", NOW) == 0.0  # = NOW
    assert retry_after_seconds("Tue, 14 Nov 2023 22:14:00 GMT", NOW) == 40.0
    assert retry_after_seconds("Tuesday, 14-Nov-23 22:14:00 GMT", NOW) == 40.0  # RFC 850
    assert retry_after_seconds("Tue Nov 14 22:14:00 2023", NOW) == 40.0  # asctime
    for bad in ("soon", "-5", "+5", "1.5", "1_0", "\u0663", "", None):
        assert retry_after_seconds(bad, NOW) is None


def test_content_length_values_that_hold():
    assert content_length(headers()) is None
    assert content_length(headers(Content_Length="0")) == 0
    assert content_length(headers(Content_Length=" 1234 ")) == 1234
    assert content_length(headers(Content_Length="12, 12")) == 12  # repeated field, RFC 9110
    assert content_length(headers(Content_Length="9" * 5000)) == TOO_LARGE
    # Transfer-Encoding overrides Content-Length (RFC 9112 section 6.3)
    assert content_length(headers(Content_Length="\xb2", Transfer_Encoding="chunked")) is None
    for bad in ("", "-1", "+5", "1_000", "0x10", "12, 13", "1e3", "\u0663", "\uff11"):
        with pytest.raises(FetchError):
            content_length(headers(Content_Length=bad))


@pytest.mark.parametrize("location", ["http://[::1", "http://[bad]/x", "http://a]/x",
                                      "//[::1/x", "http://\u2100/"])
def test_a_location_no_parser_reads_is_a_blocked_url(location):
    try:
        target = redirect_target("http://127.0.0.2/a.jpg", location)
    except FetchError as exc:
        assert exc.reason == "blocked_bad_url" and exc.status == "filtered:blocked_address"
        return
    with pytest.raises(BlockedURLError) as info:  # urljoin let it through: the guard does not
        check_url(target)
    assert info.value.reason == "bad_url"


@pytest.mark.parametrize("url", ["http://[::1/x.jpg", "http://[bad]/x.jpg", "http://\u2100/x"])
def test_an_unparsable_url_is_refused_by_the_guard(url):
    with pytest.raises(BlockedURLError) as info:
        check_url(url)
    assert info.value.reason == "bad_url"


def test_hostile_robots_lines_do_not_break_the_parse():
    lines = ["User-agent: *", "Disallow: //[x", "Crawl-delay: \xb2", "Request-rate: \xb2/\xb9",
             "Crawl-delay: " + "9" * 5000, "Disallow: /private/", "Sitemap: http://[::1",
             "Disallow: /%5B%5D/"]
    rules = RobotsRules("http://h", "rules", lines)
    assert not rules.allows("witbot", "http://h/private/a.jpg")
    assert not rules.allows("witbot", "http://h/[]/a.jpg")
    assert rules.allows("witbot", "http://h/public/a.jpg")
    assert rules.crawl_delay("witbot") == 60.0  # 9...9 capped; ² ignored
    with pytest.raises(FetchError) as info:  # unquoted, this URL's host is no host
        rules.allows("witbot", "http://h%5B/a.jpg")
    assert info.value.reason == "blocked_bad_url"


def test_content_type_charsets_that_are_no_text_encodings_are_ignored():
    for value in ("text/html; charset=base64", "text/html; charset=rot13",
                  "text/html; charset=utf-8\x00", "text/html; charset=\xb2"):
        assert charset_from_content_type(value) is None
    assert decode_html(b"<p>caf\xc3\xa9</p>", charset_from_content_type(
        "text/html; charset=idna")) == "<p>caf\xe9</p>"  # idna takes no "replace": next one


# ---------------------------------------------------------------- properties


@settings(max_examples=400, deadline=None)
@given(hs.one_of(values, digit_like))
def test_parse_digits_is_ascii_only_and_bounded(value):
    got = parse_digits(value)
    assert got is None or (0 <= got <= TOO_LARGE and value.strip(" \t").isascii()
                           and value.strip(" \t").isdigit())


@settings(max_examples=400, deadline=None)
@given(hs.one_of(values, digit_like), hs.sampled_from([None, "chunked"]))
def test_content_length_returns_a_length_or_raises_fetch_error(value, encoding):
    fields = {"Content-Length": value, **({"Transfer-Encoding": encoding} if encoding else {})}
    try:
        got = content_length(HTTPHeaderDict(fields))
    except FetchError as exc:
        assert exc.reason == "bad_response"
        return
    assert got is None or (isinstance(got, int) and 0 <= got <= TOO_LARGE)


@settings(max_examples=600, deadline=None)
@given(hs.one_of(values, digit_like,
                 hs.builds("{}, {:02d} {} {} {:02d}:{:02d}:{:02d} {}".format,
                           hs.sampled_from(["Mon", "Tue", "Wed", "x"]), hs.integers(-5, 99),
                           hs.sampled_from(["Jan", "Oct", "Dec", "Foo"]),
                           hs.integers(-10, 10 ** 30), hs.integers(-1, 99),
                           hs.integers(-1, 99), hs.integers(-1, 99),
                           hs.one_of(hs.sampled_from(["GMT", "UT", "EST", "Z", ""]),
                                     hs.integers(-10 ** 30, 10 ** 30).map("{:+d}".format)))))
def test_retry_after_returns_finite_seconds_or_none(value):
    got = retry_after_seconds(value, NOW)
    assert got is None or (math.isfinite(got) and 0.0 <= got <= MAX_RETRY_AFTER)
    when = http_date(value)
    assert when is None or math.isfinite(when)


@settings(max_examples=300, deadline=None)
@given(values)
def test_redirect_targets_are_urls_or_fetch_errors(location):
    try:
        target = redirect_target("http://127.0.0.2/a/b.jpg", location)
    except FetchError as exc:
        assert exc.reason == "blocked_bad_url"
        return
    assert isinstance(target, str)
    try:
        check_url(target)
    except BlockedURLError:
        pass


@settings(max_examples=300, deadline=None)
@given(hs.lists(values, max_size=4), hs.sampled_from(["webimagetext", "\xb2"]))
def test_x_robots_tag_always_decides(tags, token):
    fields = HTTPHeaderDict()
    for tag in tags:
        fields.add("X-Robots-Tag", tag)
    assert x_robots_forbids(fields, token, {"noai", "noimageai"}) in (True, False)


@settings(max_examples=300, deadline=None)
@given(values)
def test_content_type_parsers_always_decide(value):
    assert is_html(value) in (True, False)
    charset = charset_from_content_type(value)
    assert charset is None or isinstance(charset, str)
    assert isinstance(decode_html(b"<p>\xff\xfe caf\xc3\xa9</p>", charset), str)


robots_line = hs.one_of(
    values,
    hs.builds("{}: {}".format,
              hs.sampled_from(["User-agent", "Disallow", "Allow", "Crawl-delay", "Request-rate",
                               "Sitemap", "disallow", "ALLOW"]), values))


@settings(max_examples=300, deadline=None)
@given(hs.lists(robots_line, max_size=12), values)
def test_robots_rules_parse_anything_and_decide(lines, path):
    rules = RobotsRules("http://h", "rules", lines)
    assert rules.size > 0
    delay = rules.crawl_delay("webimagetext")
    assert delay is None or 0.0 <= delay <= 60.0
    assert all(0.0 <= d <= 60.0 for d in crawl_delays(lines).values())
    url = "http://h/" + path.lstrip("/")
    try:
        assert rules.allows("webimagetext", url) in (True, False)
    except FetchError as exc:
        assert exc.reason == "blocked_bad_url"


@settings(max_examples=300, deadline=None)
@given(hs.one_of(values, hs.builds("http://{}/x.jpg".format, values)))
def test_check_url_allows_or_raises_blocked(url):
    try:
        check_url(url)
    except BlockedURLError as exc:
        assert exc.reason in {"bad_url", "bad_scheme", "no_host", "bad_port", "userinfo",
                              "dns_error", "private_address"}
