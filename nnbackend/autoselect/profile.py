"""The profile auto chooses by: cost terms per candidate and mode, measured on
this machine (``nnbackend bench --calibrate``) or the default shipped with the
package; where it lives; reading and writing it.

A profile file is JSON::

    {"format": "nnbackend-auto-profile", "version": 1,
     "machine": "...", "created": "2026-12-05T06:00:00Z", "libraries": {...},
     "candidates": {"jax:cpu": {"sgd": {"executor": "jax-scan", "launch_s": ..., ...},
                                "minibatch": {...}, "batch": {...}}, ...},
     "blas": {"threshold_madds": 8388608, "threads": 2, "measured": [...]},
     "fingerprint": {"cpu": "CPU ...", "cores": 2},
     "groups": {"jax:cpu": {"sgd": {"created": "...", "machine": "...", "version": "0.10.2"}}}}

A measured profile's entries take the place of the default's for the same
candidate and mode; the default fills the rest (a GPU the calibration did
not see, say). A calibration merges what it measured over the file's
groups (a candidate and mode each): the header (``machine``, ``created``,
``fingerprint``, ``blas``) is the latest run's, ``libraries`` each library's
version as of the run that last measured it, and ``groups`` each group's own
run (files written before it had none: their groups are the header's).

A profile whose fingerprint (CPU name, core count) or library versions
(major.minor) differ from this process's is still used, with one
:class:`ProfileWarning` saying what differs (:attr:`Profile.mismatch`).

It is kept in :func:`cache_dir`: ``$NNBACKEND_CACHE_DIR``, else the user's
cache directory, which honours ``$XDG_CACHE_HOME`` (``$XDG_CACHE_HOME/nnbackend``,
else ``~/.cache/nnbackend`` on Linux).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field

from ..backends import cpu_name, library_version
from ..backends.auto_costs import DEFAULT_PROFILE
from ..checks import current_umask, replace_target
from ..data import MODES
from .cost import Terms

__all__ = ["CACHE_ENV_VAR", "FORMAT", "PROFILE_NAME", "Profile", "ProfileWarning", "active_profile",
           "cache_dir", "fingerprint_of", "load_profile", "machine_fingerprint", "profile_mismatch",
           "profile_path", "read_profile", "set_profile"]

CACHE_ENV_VAR = "NNBACKEND_CACHE_DIR"
PROFILE_NAME = "auto-profile.json"
FORMAT = "nnbackend-auto-profile"
VERSION = 1


class ProfileWarning(UserWarning):
    """Auto is choosing from the shipped default profile, or the profile file is unusable."""


def cache_dir() -> str:
    """Where nnbackend keeps its profile (:data:`PROFILE_NAME` in it).

    ``$NNBACKEND_CACHE_DIR`` where set (``~`` expanded, made absolute). Else,
    where platformdirs is installed, its user cache directory for
    ``nnbackend``: on Linux and other Unixes ``$XDG_CACHE_HOME/nnbackend``
    where that is set (to an absolute path, in recent platformdirs), else
    ``~/.cache/nnbackend``; on macOS and Windows the
    system's cache folder (platformdirs decides whether ``$XDG_CACHE_HOME``
    overrides it there; recent versions let it). Without platformdirs,
    ``$XDG_CACHE_HOME/nnbackend`` where that is set and not empty, else
    ``~/.cache/nnbackend``, on every system.
    """
    given = os.environ.get(CACHE_ENV_VAR)
    if given:
        return os.path.abspath(os.path.expanduser(given))
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "nnbackend")
    return user_cache_dir("nnbackend", appauthor=False)


def profile_path() -> str:
    """The profile file auto reads and ``--calibrate`` writes."""
    return os.path.join(cache_dir(), PROFILE_NAME)


@dataclass(frozen=True)
class Profile:
    """Cost terms by candidate key and mode, BLAS thread advice, and their source."""

    candidates: dict  # {key: {mode: Terms}}
    blas: dict = field(default_factory=dict)
    source: str = "default"  # "default", or the file's path
    machine: str = ""
    created: str = ""
    libraries: dict = field(default_factory=dict)
    measured: tuple = ()  # the (key, mode) pairs this machine's calibration measured
    first_use: dict = field(default_factory=dict)  # {key: seconds of a library's first fit}
    samples: dict = field(default_factory=dict)  # the calibration's timed points, to read
    fingerprint: dict = field(default_factory=dict)  # {"cpu", "cores"} of the latest run
    groups: dict = field(default_factory=dict)  # {key: {mode: {"created", "machine", "version"}}}
    from_file: bool = False  # read by load_profile
    # What differs from this process ({"machine": text, "libraries": text}; set by load_profile)
    mismatch: dict = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        """The shipped default, or a file that measured no candidate and mode: auto
        then prices from the default's terms alone and says so."""
        return self.source == "default" or (self.from_file and not self.measured)

    def terms(self, key: str, mode: str, executor: str | None = None) -> Terms | None:
        """The terms of candidate ``key`` for ``mode``: those kept for ``executor``
        (``MODE/EXECUTOR``) where there are any, else the mode's own (None: none)."""
        entries = self.candidates.get(key, {})
        found = entries.get(f"{mode}/{executor}") if executor else None
        return found if found is not None else entries.get(mode)

    def group_facts(self, key: str, mode: str) -> dict:
        """``{"created", "machine", "version"}`` of the run that measured candidate
        ``key``'s ``mode`` (``MODE/EXECUTOR`` entries share their mode's): its own
        record, else the header's (files from before per-group records)."""
        found = self.groups.get(key, {}).get(mode.partition("/")[0])
        if isinstance(found, dict):
            return found
        return {"created": self.created, "machine": self.machine,
                "version": self.libraries.get(key.partition(":")[0])}

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "machine": self.machine,
                "created": self.created, "libraries": self.libraries,
                "candidates": {k: {m: t.to_dict() for m, t in modes.items()}
                               for k, modes in self.candidates.items()},
                "blas": self.blas, "first_use": self.first_use, "samples": self.samples,
                "fingerprint": self.fingerprint, "groups": self.groups}

    @classmethod
    def from_dict(cls, d: dict, source: str) -> "Profile":
        """A profile from its JSON form; ``ValueError`` naming what is wrong."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not an nnbackend profile (no format {FORMAT!r})")
        if d.get("version") != VERSION:
            raise ValueError(f"profile version {d.get('version')!r}; "
                             f"this nnbackend reads {VERSION}")
        candidates = d.get("candidates")
        if not isinstance(candidates, dict):
            raise ValueError("'candidates' must map candidate keys to modes")
        out = {}
        for key, modes in candidates.items():
            if not isinstance(key, str) or ":" not in key or not isinstance(modes, dict):
                raise ValueError(f"bad candidate entry {key!r}")
            bad = [m for m in modes if not isinstance(m, str) or m.partition("/")[0] not in MODES]
            if bad:
                raise ValueError(f"candidate {key!r}: unknown modes {bad}")
            try:
                out[key] = {m: Terms.from_dict(t) for m, t in modes.items()}
            except (TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"candidate {key!r}: {exc}") from None
            wrong = [m for m, t in out[key].items()
                     if "/" in m and m.partition("/")[2] != t.executor]
            if wrong:
                raise ValueError(f"candidate {key!r}: entries {wrong} hold another "
                                 "executor's terms")
        blas = _checked_blas(d.get("blas") or {})
        first_use = d.get("first_use") or {}
        if not isinstance(first_use, dict) or not all(_number(v) for v in first_use.values()):
            raise ValueError("'first_use' must map candidate keys to seconds >= 0, finite")
        for name in ("libraries", "samples", "fingerprint"):
            if not isinstance(d.get(name) or {}, dict):
                raise ValueError(f"'{name}' must be a mapping")
        groups = d.get("groups") or {}
        if not isinstance(groups, dict) or not all(
                isinstance(modes, dict) and all(isinstance(f, dict) for f in modes.values())
                for modes in groups.values()):
            raise ValueError("'groups' must map candidate keys to modes to their run's facts")
        return cls(out, blas, source, str(d.get("machine", "")), str(d.get("created", "")),
                   dict(d.get("libraries") or {}),
                   tuple((k, m) for k, modes in out.items() for m in modes if source != "default"),
                   dict(first_use), dict(d.get("samples") or {}), dict(d.get("fingerprint") or {}),
                   {k: dict(modes) for k, modes in groups.items()})

    def over(self, base: "Profile") -> "Profile":
        """This profile's entries, ``base``'s where this one has none."""
        merged = {k: dict(v) for k, v in base.candidates.items()}
        for key, modes in self.candidates.items():
            merged.setdefault(key, {}).update(modes)
        blas = dict(base.blas)
        blas.update(self.blas)
        # replace() keeps this profile's own facts (source, header, groups, ...)
        return dataclasses.replace(self, candidates=merged, blas=blas,
                                   first_use={**base.first_use, **self.first_use})

    def save(self, path: str | None = None) -> str:
        """Write the profile as JSON to ``path`` (default :func:`profile_path`),
        atomically; returns the path."""
        path = path or profile_path()
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        target = replace_target(path, "profile")
        directory = os.path.dirname(target)
        fd, tmp = tempfile.mkstemp(prefix=".profile-", suffix=".json.tmp", dir=directory)
        try:
            # mkstemp makes it 0600: follow the umask, as files do
            os.fchmod(fd, 0o666 & ~current_umask())
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())  # on disk before it replaces the measured one
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path


def _number(value, low=0):
    """A finite JSON number >= ``low`` (JSON's Infinity and NaN are not measurements)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= low)


def _checked_blas(blas) -> dict:
    """The profile's BLAS advice, refused (ValueError) where a NumPy fit could not
    read it: every NumPy fit reads it, auto or not."""
    if not isinstance(blas, dict):
        raise ValueError("'blas' must be a mapping")
    if blas.get("threshold_madds") is not None and not _number(blas["threshold_madds"]):
        raise ValueError("'blas.threshold_madds' must be a finite number >= 0 or null")
    if blas.get("threads") is not None and not (_number(blas["threads"], 1)
                                                 and float(blas["threads"]).is_integer()):
        raise ValueError("'blas.threads' must be a whole number >= 1 or null")
    measured = blas.get("measured") or []
    if not isinstance(measured, list) or not all(
            isinstance(m, list) and len(m) == 3 and all(_number(v) for v in m) for m in measured):
        raise ValueError("'blas.measured' must list [product, one thread's s, threads' s] "
                         "triples of finite numbers >= 0")
    return blas


@functools.lru_cache(maxsize=1)
def default_profile() -> Profile:
    """The conservative profile shipped with the package (read once: not to be changed)."""
    return Profile.from_dict(DEFAULT_PROFILE, "default")


# The profile set by set_profile() (calibration, tests), and the file cache:
# {path: (mtime_ns, Profile or the error text)}.
_OVERRIDE = {"profile": None}
_FILES = {}
_WARNED = set()


def set_profile(profile: Profile | None) -> Profile | None:
    """Use ``profile`` for every choice in this process (None: back to the file);
    returns the one set before (None: none)."""
    previous, _OVERRIDE["profile"] = _OVERRIDE["profile"], profile
    return previous


def read_profile(path: str) -> Profile:
    """The profile file at ``path`` alone (not over the default).

    Raises
    ------
    OSError
        Where it cannot be read (``FileNotFoundError``: there is none).
    Exception
        Anything else reading or parsing it raised: ``ValueError`` naming
        what is wrong, or whatever a corrupt file makes the JSON parser
        raise (``RecursionError`` for deeply nested arrays, say).
    """
    with open(path) as f:
        return dataclasses.replace(Profile.from_dict(json.load(f), path), from_file=True)


def load_profile(path: str | None = None) -> Profile:
    """The profile at ``path`` (default :func:`profile_path`) over the shipped
    default, or the default alone where there is no usable file. Re-read when
    the file changes. A file measured on another machine or with other library
    versions is used, with one :class:`ProfileWarning` saying what differs."""
    path = path or profile_path()
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return default_profile()
    cached = _FILES.get(path)
    if cached is None or cached[0] != mtime:
        try:
            loaded = read_profile(path).over(default_profile())
        except Exception as exc:  # noqa: BLE001 - every NumPy fit reads this file
            # Whatever reading or parsing raised (a RecursionError from deeply
            # nested JSON too) is a corrupt file: the default, with a warning.
            loaded = f"{path} is not a usable profile ({type(exc).__name__}: {exc})"
        else:
            loaded = dataclasses.replace(loaded, mismatch=profile_mismatch(loaded))
        _FILES[path] = cached = (mtime, loaded)
    if isinstance(cached[1], str):
        _warn_once(cached[1], f"{cached[1]}; auto uses the shipped default (run "
                              "`nnbackend bench --calibrate` to measure this machine)")
        return default_profile()
    if cached[1].mismatch:
        what = "; ".join(cached[1].mismatch.values())
        _warn_once(("mismatch", path, what),
                   f"{path} does not describe this machine ({what}): auto still prices from "
                   "it, so its choices may not suit this one; re-run `nnbackend bench --calibrate`")
    return cached[1]


def machine_fingerprint() -> dict:
    """``{"cpu", "cores"}`` of this machine: what a profile's timings depend on
    beyond the libraries (the load at the time is in its ``machine`` text)."""
    return {"cpu": cpu_name(), "cores": os.cpu_count()}


def fingerprint_of(profile: Profile) -> dict:
    """The profile's :func:`machine_fingerprint`; for a file from before it kept
    one, read off its ``machine`` text ("CPU ..., N cores, load ..."); {} where
    neither says."""
    if profile.fingerprint:
        return profile.fingerprint
    found = re.fullmatch(r"(.+), (\d+) cores(?:, load average .*)?", profile.machine)
    return {"cpu": found.group(1), "cores": int(found.group(2))} if found else {}


def _major_minor(version: str):
    found = re.match(r"(\d+)\.(\d+)", str(version))
    return found.groups() if found else str(version)


def profile_mismatch(profile: Profile) -> dict:
    """What differs between where ``profile`` was measured and this process:
    ``{"machine": text}`` where the CPU name or core count differ,
    ``{"libraries": text}`` where a measured group's library had another
    major.minor version than the one installed now; {} where nothing does
    (or the profile does not say)."""
    out = {}
    there, here = fingerprint_of(profile), machine_fingerprint()
    if there and (there.get("cpu") != here["cpu"] or there.get("cores") != here["cores"]):
        out["machine"] = (f"measured on {there.get('cpu')}, {there.get('cores')} cores; "
                          f"this is {here['cpu']}, {here['cores']} cores")
    versions = {}  # library -> the versions its measured groups ran
    for key, mode in profile.measured:
        version = profile.group_facts(key, mode).get("version")
        if version:
            versions.setdefault(key.partition(":")[0], set()).add(str(version))
    stale = []
    for name, found in sorted(versions.items()):
        now = library_version(name)
        old = sorted(v for v in found if now and _major_minor(v) != _major_minor(now))
        if old:
            stale.append(f"{name} {', '.join(old)} (installed: {now})")
    if stale:
        out["libraries"] = "measured with " + ", ".join(stale)
    return out


def active_profile(announce: bool = False) -> Profile:
    """The profile in use: :func:`set_profile`'s, else :func:`load_profile`'s.

    ``announce``: where that is the shipped default, say so (a
    :class:`ProfileWarning`, once per process and cache directory).
    """
    if _OVERRIDE["profile"] is not None:
        return _OVERRIDE["profile"]
    profile = load_profile()
    path = profile_path()
    if announce and profile.is_default and not isinstance(_FILES.get(path, (0, None))[1], str):
        # (An unusable file was said once already, by load_profile.)
        why = "does not exist" if profile.source == "default" else "measures no candidate"
        _warn_once(("default", path),
                   f"backend='auto' has no measured profile ({path} {why}): it "
                   "chooses from the conservative default shipped with nnbackend; run "
                   "`nnbackend bench --calibrate` to measure this machine")
    return profile


def _warn_once(key, message):
    if key in _WARNED:
        return
    _WARNED.add(key)
    # _warn_once <- active_profile <- MLP._choose_backend <- MLP.fit <- the caller
    warnings.warn(message, ProfileWarning, stacklevel=5)
