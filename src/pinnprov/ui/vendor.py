"""Third-party browser assets vendored into ui/static/vendor, pinned by version and checksum.

Why vendored: clusters are often offline and a provenance tool must not phone a CDN, so every asset is served
from the installed package. Why pinned with checksums: a refresh is a reviewed change (new version, new hashes in
this file), and a test checks the files in the tree are exactly the pinned ones.

Refresh (needs npm and the npm registry; the tarball's integrity is checked against the pin):
    python -m pinnprov.ui.vendor                      # re-fetch the pinned version, verify, rewrite the files
    python -m pinnprov.ui.vendor --version 1.6.33     # fetch another version, print the pins to paste here
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

VENDOR_DIR = Path(__file__).parent / "static" / "vendor"


@dataclass(frozen=True)
class VendoredPackage:
    """One npm package: which files of its tarball we serve, and their SHA-256."""

    name: str
    version: str
    licence: str
    integrity: str  # npm's sha512 of the tarball (`npm view NAME@VERSION dist.integrity`)
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # served name -> (path in tarball, sha256)

    @property
    def directory(self) -> Path:
        return VENDOR_DIR / self.name


# uPlot: MIT, ~50 KB minified, no dependencies, canvas-based (fast with 10^5 points), log scales, zoom, cursor sync.
UPLOT = VendoredPackage(
    name="uplot",
    version="1.6.32",
    licence="MIT",
    integrity="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
    files={
        "uPlot.iife.min.js": (
            "package/dist/uPlot.iife.min.js", "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"
        ),
        "uPlot.min.css": (
            "package/dist/uPlot.min.css", "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"
        ),
        "LICENSE": ("package/LICENSE", "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd"),
    },
)
PACKAGES = (UPLOT,)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mismatches(package: VendoredPackage) -> list[str]:
    """Files of `package` missing or different from their pin (empty when the tree is as pinned)."""
    problems = []
    for served, (_, digest) in package.files.items():
        path = package.directory / served
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif sha256(path) != digest:
            problems.append(f"{path}: sha256 {sha256(path)} is not the pinned {digest}")
    return problems


def _npm_integrity(tarball: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()


def refresh(package: VendoredPackage, version: str | None = None) -> list[str]:
    """Fetch NAME@VERSION with `npm pack`, check it, write the served files; returns pin lines for a new version."""
    version = version or package.version
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", f"{package.name}@{version}", "--silent", "--pack-destination", tmp],
            check=True, stdout=subprocess.DEVNULL,
        )
        tarball = next(Path(tmp).glob("*.tgz"))
        integrity = _npm_integrity(tarball)
        pinned = version == package.version
        if pinned and integrity != package.integrity:
            raise ValueError(f"{package.name}@{version}: tarball integrity {integrity} is not the pinned one")
        package.directory.mkdir(parents=True, exist_ok=True)
        lines = [f"version={version!r}", f"integrity={integrity!r}"]
        with tarfile.open(tarball) as archive:
            for served, (member, digest) in package.files.items():
                extracted = archive.extractfile(member)
                if extracted is None:
                    raise ValueError(f"{package.name}@{version}: {member} is not a file")
                data = extracted.read()
                actual = hashlib.sha256(data).hexdigest()
                if pinned and actual != digest:
                    raise ValueError(f"{member}: sha256 {actual} is not the pinned {digest}")
                (package.directory / served).write_bytes(data)
                lines.append(f"{served}: {actual}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinnprov.ui.vendor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", help=f"fetch this uplot version instead of the pinned {UPLOT.version}")
    args = parser.parse_args(argv)
    for line in refresh(UPLOT, args.version):
        print(line)
    if args.version and args.version != UPLOT.version:
        print("not pinned yet: paste the version, integrity and sha256 above into ui/vendor.py", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
