"""Settings: every iipsrv environment variable, read once at start-up.

Names, defaults and ranges are iipsrv's (iip-protocol.md §9), so an existing
``FcgidInitialEnv`` or lighttpd ``bin-environment`` block works unchanged.
Where iipsrv would silently turn garbage into 0 (C ``atoi``) we stop start-up
with a message naming the variable instead: a typo should not silently turn a
feature off.  Nothing else in iipy reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from . import __version__
from .errors import ConfigError

VERSION = "1.1"  # the iipsrv version whose wire behaviour we follow by default
#: the Server header: iipy's own name and version unless IIPY_SERVER_HEADER asks otherwise
SERVER_HEADER = f"iipy/{__version__}"
MEGABYTE = 1_024_000  # iipsrv's "MB" for MAX_IMAGE_CACHE_SIZE
BIG = 2**31 - 1  # upper bound of settings that have none of their own (C int)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw.strip())
    except ValueError:
        try:
            return int(float(raw.strip()))
        except (ValueError, OverflowError):
            raise ConfigError(f"{name}={raw!r} is not a number") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def _str(env: Mapping[str, str], name: str, default: str = "") -> str:
    return env.get(name, default)


def _ranged(env: Mapping[str, str], name: str, default: float, low: float, high: float,
            kind: type = int) -> float:
    """A number in ``low..high``: anything outside stops start-up naming the variable
    (iipsrv clamps silently, which hides a typo such as JPEG_QUALITY=150)."""
    value = _float(env, name, default) if kind is float else _int(env, name, int(default))
    if not (low <= value <= high):  # also refuses NaN
        span = " to ".join(str(int(x)) if float(x).is_integer() else f"{x:g}" for x in (low, high))
        raise ConfigError(f"{name}={env.get(name)!r} is out of range ({span})")
    return value


def _max_cvt(env: Mapping[str, str]) -> int:
    """MAX_CVT: a positive size, or -1 for no limit (0 and below -1 used to be clamped
    into a default and into 1 pixel, which made every export 1x1)."""
    value = _int(env, "MAX_CVT", 5000)
    if value == -1 or value > 0:
        return value
    raise ConfigError(f"MAX_CVT={env.get('MAX_CVT')!r} must be a positive size or -1 (no limit)")


def read_env_file(path: str) -> dict[str, str]:
    """``NAME=value`` lines of a shell-sourceable file (/etc/default/iipy): comments, blank
    lines, ``export``, shell quoting. ConfigError for an unreadable file or a bad line."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    found: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from None
        if words[:1] == ["export"]:
            words = words[1:]
        if not words:
            continue
        name, sep, value = words[0].partition("=")
        if len(words) != 1 or not sep or not name.replace("_", "a").isalnum():
            raise ConfigError(f"{path}:{number}: not NAME=value: {line.strip()!r}")
        found[name] = value
    return found


def _networks(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma/space list of addresses or networks (``10.0.0.0/8``); ``*`` for anyone."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    items = tuple(part for part in raw.replace(",", " ").split() if part)
    if items == ("*",):
        return ()
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an address or network") from None
    return items


def _server_header(raw: str) -> str:
    """IIPY_SERVER_HEADER: empty for iipy's own, ``iipsrv`` for iipsrv 1.1's value (for a
    client that checks it), anything else verbatim."""
    raw = raw.strip()
    if not raw:
        return SERVER_HEADER
    if raw.lower() == "iipsrv":
        return f"iipsrv/{VERSION}"
    return raw


def _prefix(env: Mapping[str, str]) -> str:
    """FILESYSTEM_PREFIX: a directory, or a string stem whose directory exists."""
    prefix = env.get("FILESYSTEM_PREFIX", "")
    if prefix and not os.path.isdir(prefix) and not os.path.isdir(os.path.dirname(prefix) or "."):
        raise ConfigError(
            f"FILESYSTEM_PREFIX={prefix!r}: neither it nor its directory exists"
        )
    return prefix


URI_MAP_PROTOCOLS = {"iip": "fif", "iiif": "iiif", "deepzoom": "deepzoom", "zoomify": "zoomify"}


def _uri_map(raw: str) -> tuple[str, str] | None:
    """``prefix=>protocol`` → (prefix, command name), or None when unset."""
    if not raw.strip():
        return None
    if "=>" not in raw:
        raise ConfigError(f"URI_MAP={raw!r} must look like 'prefix=>protocol'")
    prefix, protocol = (part.strip() for part in raw.split("=>", 1))
    command = URI_MAP_PROTOCOLS.get(protocol.lower())
    if command is None:
        raise ConfigError(
            f"URI_MAP={raw!r}: protocol must be one of IIP, IIIF, DeepZoom, Zoomify"
        )
    return prefix.strip("/"), command


@dataclass(frozen=True)
class Settings:
    verbosity: int = 1
    logfile: str = "/tmp/iipsrv.log"
    logfile_set: bool = False  # LOGFILE was given (else `iipy --http` logs to the terminal)
    max_image_cache_bytes: int = 10 * MEGABYTE
    max_metadata_cache_size: int = 1000
    filesystem_prefix: str = ""
    filesystem_suffix: str = ""
    filename_pattern: str = "_pyr_"
    jpeg_quality: int = 75
    png_quality: int = 1
    webp_quality: int = 50
    avif_quality: int = 50  # -1: lossless
    tiff_compression: int = 2
    tiff_quality: int = 1
    max_cvt: int = 5000  # -1: no limit
    max_source_pixels: int = 1 << 28  # iipy's own: source pixels one request may decode
    allow_upscaling: bool = True
    max_layers: int = 0
    watermark: str = ""
    watermark_probability: float = 1.0
    watermark_opacity: float = 1.0
    memcached_servers: str = ""
    memcached_timeout: int = 86400
    interpolation: int = 1
    cors: str = ""
    base_url: str = ""
    cache_control: str = "max-age=86400"
    uri_map: tuple[str, str] | None = None
    embed_icc: bool = True
    max_icc: int = 65536
    codec_passthrough: bool = True
    iiif_version: int = 3
    iiif_delimiter: str = ""
    iiif_extra_info: str = ""
    iiif_extensions: bool = False
    copyright: str = ""
    # iipy's own
    fcgi_web_server_addrs: str = ""
    front_cache: bool = True  # with memcached, also store JPEG tiles under their URI
    read_timeout: float = 5.0  # seconds a FastCGI/HTTP connection may take to send a request
    error_truncate: bool = True  # 1.1 cuts IIP error lines after 31 characters
    server_name: str = SERVER_HEADER
    health: bool = True  # /health, ?HEALTH
    health_allow: tuple[str, ...] = ()  # networks allowed to ask; () anyone
    metrics: bool = True  # /metrics, ?METRICS
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1")
    metrics_dir: str = ""  # prometheus-client multiprocess directory
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, env_file: str = "") -> Settings:
        """The process environment, overlaid with ``env_file`` when given (``--env-file``:
        read again on every reload, so editing it and sending SIGHUP changes settings)."""
        env = dict(os.environ)
        if env_file:
            env.update(read_env_file(env_file))
        return cls.from_environ(env)

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every variable once; raise ConfigError naming a bad one."""
        env = os.environ if env is None else env
        metadata_size = int(_ranged(
            env, "MAX_METADATA_CACHE_SIZE",
            _ranged(env, "MAX_IMAGE_METADATA_CACHE_SIZE", 1000, -1, BIG), -1, BIG,
        ))
        cache_mb = _float(env, "MAX_IMAGE_CACHE_SIZE", 10.0)
        if cache_mb < 0:
            raise ConfigError(f"MAX_IMAGE_CACHE_SIZE={cache_mb} must not be negative")
        cache_mb = _ranged(env, "MAX_IMAGE_CACHE_SIZE", 10.0, 0, 1e9, float)
        iiif_version = _int(env, "IIIF_VERSION", 3)
        if iiif_version < 1:
            iiif_version = 3
        if iiif_version not in (2, 3):
            raise ConfigError(f"IIIF_VERSION={iiif_version}: iipy serves versions 2 and 3")
        return cls(
            verbosity=int(_ranged(env, "VERBOSITY", 1, 0, BIG)),
            logfile=_str(env, "LOGFILE", "/tmp/iipsrv.log"),
            logfile_set="LOGFILE" in env,
            max_image_cache_bytes=int(cache_mb * MEGABYTE),
            max_metadata_cache_size=metadata_size,
            filesystem_prefix=_prefix(env),
            filesystem_suffix=_str(env, "FILESYSTEM_SUFFIX"),
            filename_pattern=_str(env, "FILENAME_PATTERN", "_pyr_") or "_pyr_",
            jpeg_quality=int(_ranged(env, "JPEG_QUALITY", 75, 1, 100)),
            png_quality=int(_ranged(env, "PNG_QUALITY", 1, 0, 9)),
            webp_quality=int(_ranged(env, "WEBP_QUALITY", 50, -1, 100)),
            avif_quality=int(_ranged(env, "AVIF_QUALITY", 50, -1, 100)),
            tiff_compression=int(_ranged(env, "TIFF_COMPRESSION", 2, 0, 5)),
            tiff_quality=int(_ranged(env, "TIFF_QUALITY", 1, 0, 100)),
            max_cvt=_max_cvt(env),
            max_source_pixels=int(_ranged(env, "MAX_SOURCE_PIXELS", 1 << 28, 1, 1 << 62)),
            allow_upscaling=_int(env, "ALLOW_UPSCALING", 1) != 0,
            max_layers=int(_ranged(env, "MAX_LAYERS", 0, -1, BIG)),
            watermark=_str(env, "WATERMARK"),
            watermark_probability=_ranged(env, "WATERMARK_PROBABILITY", 1.0, 0, 1, float),
            watermark_opacity=_ranged(env, "WATERMARK_OPACITY", 1.0, 0, 1, float),
            memcached_servers=_str(env, "MEMCACHED_SERVERS"),
            memcached_timeout=int(_ranged(env, "MEMCACHED_TIMEOUT", 86400, 0, BIG)),
            interpolation=int(_ranged(env, "INTERPOLATION", 1, 0, 3)),
            cors=_str(env, "CORS"),
            base_url=_str(env, "BASE_URL"),
            cache_control=_str(env, "CACHE_CONTROL", "max-age=86400") or "max-age=86400",
            uri_map=_uri_map(_str(env, "URI_MAP")),
            embed_icc=_int(env, "EMBED_ICC", 1) != 0,
            max_icc=int(_ranged(env, "MAX_ICC", 65536, -1, BIG)),
            codec_passthrough=_int(env, "CODEC_PASSTHROUGH", 1) != 0,
            iiif_version=iiif_version,
            iiif_delimiter=_str(env, "IIIF_DELIMITER"),
            iiif_extra_info=_str(env, "IIIF_EXTRA_INFO"),
            iiif_extensions=_int(env, "IIIF_EXTENSIONS", 0) != 0,
            copyright=_str(env, "COPYRIGHT"),
            fcgi_web_server_addrs=_str(env, "FCGI_WEB_SERVER_ADDRS"),
            front_cache=_int(env, "IIPY_FRONT_CACHE", 1) != 0,
            read_timeout=_ranged(env, "IIPY_READ_TIMEOUT", 5.0, 0.001, 3600, float),
            error_truncate=_int(env, "IIPY_ERROR_TRUNCATE", 1) != 0,
            server_name=_server_header(_str(env, "IIPY_SERVER_HEADER")),
            health=_int(env, "IIPY_HEALTH", 1) != 0,
            health_allow=_networks(env, "IIPY_HEALTH_ALLOW", ()),
            metrics=_int(env, "IIPY_METRICS", 1) != 0,
            metrics_allow=_networks(env, "IIPY_METRICS_ALLOW", ("127.0.0.0/8", "::1")),
            metrics_dir=_str(env, "IIPY_METRICS_DIR"),
        )

    def changes(self) -> list[str]:
        """``name=value`` for every setting that differs from its default (one log line)."""
        default = Settings()
        return [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in ("extra", "logfile_set")
            and getattr(self, f.name) != getattr(default, f.name)
        ]

    def summary(self) -> list[str]:
        """``name = value`` lines for the start-up log."""
        return [
            f"{f.name} = {getattr(self, f.name)!r}" for f in fields(self) if f.name != "extra"
        ]
