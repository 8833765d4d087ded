"""Hypothesis strategies for hostile requests in every protocol's grammar.

Each strategy draws a whole request (method, request target, headers, body)
as a web server would hand it to the application: the request's bytes as
latin-1 text (PEP 3333).  The pieces lean towards what breaks parsers:
numbers of any size (past Python's 4,300-digit ``int`` limit), floats
(``1e309``, ``1e-320``, ``nan``), Unicode digits (``²``, ``١``), signs and
spaces, duplicated and conflicting parameters, percent-encodings, raw UTF-8,
random bytes and every method.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

IMAGES = ("rgb.tif", "rgb_odd.tif", "grey16.tif", "nope.tif", "")
METHODS = ("GET",) * 10 + ("HEAD", "HEAD", "POST", "POST", "POST", "OPTIONS", "PUT", "DELETE",
                           "PATCH", "TRACE", "CONNECT", "get", "BREW")
SPECIAL_NUMBERS = (
    "0", "1", "-1", "+1", "-0", "00", " 7", "7 ", "2147483647", "2147483648", "-2147483649",
    "4294967296", "9" * 20, "1e309", "-1e309", "1e-320", "1e308", "inf", "-inf", "nan",
    "Infinity", "0x10", "1_000", "1.", ".5", ".", "1e", "e5", "1.5e3", "²", "١٢", "٣", "１",
    "0.5", "1/2", "", " ", "--1", "+-1", "1,5", "\u00a0" + "5", "5\u2009",
)


@dataclass
class Call:
    """One request: what tests/wsgi.call sends."""

    method: str
    uri: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def raw(text: str) -> str:
    """Text sent as its UTF-8 bytes, handed over as latin-1 (PEP 3333)."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


# -- numbers ----------------------------------------------------------------------

digits = st.text("0123456789", min_size=1, max_size=12)
huge_digits = st.builds(lambda d, n: d * n, st.sampled_from("123456789"),
                        st.sampled_from([20, 310, 4301, 6000]))
unicode_digits = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4)
numbers = st.one_of(
    st.sampled_from(SPECIAL_NUMBERS),
    digits,
    huge_digits,
    huge_digits,
    huge_digits,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda f: f"{f:.9f}"),
    unicode_digits,
    st.builds(lambda sign, d: sign + d, st.sampled_from(["-", "+", " ", "\t"]), digits),
    st.builds(lambda a, b: f"{a}e{b}", digits, st.integers(-400, 400)),
)
junk = st.text(max_size=12)
values = st.one_of(numbers, numbers, junk)


small = st.integers(min_value=0, max_value=12).map(str)


@st.composite
def slots(draw, count: int, valid: st.SearchStrategy = small) -> list[str]:
    """``count`` numbers of which one (at random, or none) is hostile and the
    others mostly valid, so that the hostile one reaches its parser."""
    hostile = draw(st.integers(-1, count - 1))
    return [draw(values) if i == hostile or draw(st.integers(0, 9)) == 0 else draw(valid)
            for i in range(count)]


def joined(parts: st.SearchStrategy, seps: str = ",") -> st.SearchStrategy[str]:
    return st.builds(lambda items, sep: sep.join(items), st.lists(parts, min_size=0, max_size=5),
                     st.sampled_from(list(seps)))


# -- IIP ---------------------------------------------------------------------------

_IIP_ARGUMENTS = {
    "FIF": st.sampled_from(IMAGES),
    "OBJ": st.sampled_from(["IIP,1.0", "Max-size", "Resolution-number", "Tile-size",
                            "Basic-info", "metadata", "foo", "dpi", "Colorspace,0-4,0"]),
    "JTL": st.builds(",".join, slots(2)), "PTL": st.builds(",".join, slots(2)),
    "WTL": joined(values),
    "CVT": st.sampled_from(["jpeg", "png", "webp", "tif", "gif", ""]),
    "WID": values, "HEI": values, "QLT": values, "LYR": values, "SDS": joined(values),
    "RGN": st.one_of(joined(values), st.builds(",".join, slots(4, st.sampled_from(
        ["0", "0.25", "0.5", "1", "1e-320"])))),
    "CNT": st.one_of(values, st.just("st"), st.just("eq")),
    "GAM": st.one_of(values, st.just("log")), "INV": st.just("1"),
    "CMP": st.sampled_from(["GREY", "JET", "COLD", "HOT", "RED", "x"]),
    "CTW": st.builds(lambda rows: "[" + ";".join(rows) + "]", st.lists(joined(values), max_size=4)),
    "COL": st.sampled_from(["grey", "gray", "binary", "rgb"]),
    "MINMAX": st.builds(lambda v: f"{v[0]}:{v[1]},{v[2]}", slots(3)),
    "SHD": joined(values), "CNV": st.one_of(st.sampled_from(["sobel", "gaussian"]),
                                             joined(values)),
    "ROT": st.one_of(values, values.map(lambda v: "!" + v)),
    "SPECTRA": st.builds(",".join, slots(4)),
    "PFL": st.one_of(st.builds(lambda v: f"{v[0]}:{v[1]},{v[2]}-{v[3]},{v[4]}", slots(5)),
                     st.builds(lambda v: f"{v[0]}:{v[1]},{v[2]}", slots(3)), joined(values, ":,-")),
}
iip_name = st.one_of(st.sampled_from(sorted(_IIP_ARGUMENTS)),
                     st.sampled_from(sorted(_IIP_ARGUMENTS)).map(str.lower),
                     st.text(min_size=1, max_size=6))


@st.composite
def iip_token(draw) -> str:
    name = draw(iip_name)
    strategy = _IIP_ARGUMENTS.get(name.upper(), values)
    argument = draw(st.one_of(strategy, strategy, junk))
    return draw(st.sampled_from([f"{name}={argument}", name, f"{name}=", f"={argument}"]
                                if draw(st.integers(0, 9)) == 0 else [f"{name}={argument}"]))


@st.composite
def iip_queries(draw) -> str:
    tokens = draw(st.lists(iip_token(), min_size=0, max_size=7))
    if draw(st.booleans()):
        tokens.insert(0, "FIF=" + draw(st.sampled_from(IMAGES[:3])))
    if draw(st.booleans()):  # a conflicting repeat of something already there
        tokens.append(draw(iip_token()))
        tokens.insert(draw(st.integers(0, len(tokens))), tokens[-1])
    if draw(st.booleans()):
        tokens.append(draw(st.sampled_from(["JTL=0,0", "CVT=jpeg", "OBJ=Max-size", "PTL=1,1"])))
    return "&".join(tokens)


# -- IIIF --------------------------------------------------------------------------

region = st.one_of(
    st.sampled_from(["full", "square", "pct:", "0,0,0,0", ",,,"]),
    st.builds(",".join, slots(4, st.integers(1, 900).map(str))),
    st.builds(lambda v: "pct:" + ",".join(v), slots(4, st.integers(1, 90).map(str))),
    st.builds(lambda v: ",".join(v), st.lists(values, min_size=3, max_size=5)),
    junk,
)
size = st.one_of(
    st.sampled_from(["max", "^max", "full", "^full", ",", "!,", "^", "pct:"]),
    st.builds(lambda up, bang, w, h, sep: up + bang + w + sep + h,
              st.sampled_from(["", "^"]), st.sampled_from(["", "!"]),
              st.one_of(values, st.just("")), st.one_of(values, st.just("")),
              st.sampled_from([",", ",", ";", ""])),
    st.builds(lambda up, v: f"{up}pct:{v}", st.sampled_from(["", "^"]), values),
    st.builds(lambda up, bang, v: f"{up}{bang}{v[0]},{v[1]}", st.sampled_from(["", "^"]),
              st.sampled_from(["", "!"]), slots(2, st.integers(1, 400).map(str))),
    junk,
)
rotation = st.one_of(values, values.map(lambda v: "!" + v),
                     st.sampled_from(["0", "90", "!0", "45", "22.5", "359.9", "!180"]))
quality = st.builds(lambda q, f: f"{q}.{f}" if f is not None else q,
                    st.sampled_from(["default", "color", "gray", "grey", "bitonal", "native", "x"]),
                    st.one_of(st.none(), st.sampled_from(["jpg", "png", "webp", "tif", "gif",
                                                          "jp2", "pdf", ""]), junk))
iiif_identifier = st.one_of(st.sampled_from(["rgb.tif", "rgb_odd.tif", "nope.tif", "rgb.tif_0",
                                             "rgb.tif_9", "rgb.tif_²", "rgb%2Etif", "r%C3%A9.tif",
                                             "ré.tif", "%", "a/b"]), junk)


@st.composite
def iiif_argument(draw) -> str:
    ident = draw(iiif_identifier)
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return f"{ident}/info.json"
    if kind == 1:
        return ident + draw(st.sampled_from(["", "/", "/full", "/full/max/0"]))
    valid = ["full", "max", "0", "default.jpg"]
    hostile = draw(st.integers(0, 4))  # one hostile segment (4: all of them)
    parts = [draw(strategy) if i == hostile or hostile == 4 else valid[i]
             for i, strategy in enumerate((region, size, rotation, quality))]
    return "/".join([ident, *parts]) + draw(st.sampled_from(["", "", "?123", "/"]))


# -- DeepZoom and Zoomify --------------------------------------------------------------

tile_ext = st.sampled_from(["jpg", "jpg", "jpg", "png", "webp", "gif", "JPG", ""])


@st.composite
def deepzoom_argument(draw) -> str:
    image = draw(st.sampled_from(IMAGES[:3] + ("nope.tif",)))
    if draw(st.integers(0, 5)) == 0:
        return image + ".dzi"
    level, x, y = draw(slots(3))
    return f"{image}_files/{level}/{x}_{y}.{draw(tile_ext)}"


@st.composite
def zoomify_argument(draw) -> str:
    image = draw(st.sampled_from(IMAGES[:3] + ("nope.tif",)))
    if draw(st.integers(0, 5)) == 0:
        return image + "/ImageProperties.xml"
    group, z, x, y = draw(slots(4))
    return f"{image}/TileGroup{group}/{z}-{x}-{y}.{draw(tile_ext)}"


# -- whole requests ------------------------------------------------------------------

headers = st.fixed_dictionaries({}, optional={
    "Accept": st.sampled_from(["application/ld+json;profile=\"http://iiif.io/api/image/2/"
                               "context.json\"", "application/json", "*/*"]),
    "If-None-Match": st.one_of(st.just("*"), junk),
    "If-Modified-Since": st.one_of(
        st.just("Sat, 21 Nov 2026 04:38:30 GMT"), junk,
        st.builds("{}, {} Nov {} {}:38:30 {}".format, st.sampled_from(["Sat", "Xyz"]), numbers,
                  numbers, numbers, st.one_of(st.just("GMT"), numbers))),
    "Host": st.one_of(st.just("example.org:8080"), junk),
    "X-IIIF-ID": st.one_of(st.just("https://example.org/iiif/x"), junk),
})
random_bytes = st.binary(max_size=24).map(lambda b: b.decode("latin-1"))


@st.composite
def requests(draw, protocol: str) -> Call:
    """A request of ``protocol`` ("iip", "iiif", "deepzoom", "zoomify"), sent as a
    query string, a POST body or a path, with noise mixed in."""
    # mostly methods that reach the grammar (hypothesis would favour random text)
    if draw(st.integers(0, 9)):
        method = draw(st.sampled_from(METHODS))
    else:
        method = draw(st.text(min_size=1, max_size=8))
    if protocol == "iip":
        argument = draw(iip_queries())
    else:
        argument = draw({"iiif": iiif_argument(), "deepzoom": deepzoom_argument(),
                         "zoomify": zoomify_argument()}[protocol])
    if draw(st.integers(0, 7)) == 0:  # random bytes somewhere
        cut = draw(st.integers(0, len(argument)))
        argument = argument[:cut] + draw(random_bytes) + argument[cut:]
    argument = raw(argument)
    body = b""
    if protocol == "iip" or draw(st.booleans()):  # the query-string form
        command = {"iip": "", "iiif": "IIIF=", "deepzoom": "DeepZoom=",
                   "zoomify": "Zoomify="}[protocol]
        query = command + argument
        if method == "POST" and draw(st.booleans()):
            body, query = query.encode("latin-1"), ""
        uri = "/fcgi-bin/iipsrv.fcgi" + ("?" + query if query else "")
    else:  # the path form (standalone server, URI_MAP)
        query = ""
        uri = f"/{protocol}/{argument}"
    sent = {name: raw(value) for name, value in draw(headers).items()}  # bytes, as latin-1
    return Call(method, uri, query, sent, body)
