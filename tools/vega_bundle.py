"""Inline Vega, Vega-Lite and Vega-Embed into .dvc/plots/page.html, the page template of
`dvc plots show` / `dvc plots diff` (.dvc/config: plots.html_template), so that it draws
its plots with no network.

    python tools/vega_bundle.py              # npm pack the versions below (needs npm)
    python tools/vega_bundle.py --from DIR   # or take the .tgz files npm pack wrote in DIR

The versions are the ones DVC's own page loads from a CDN (dvc_render.vega.VegaRenderer.
SCRIPTS). Each ``<script data-bundle="PACKAGE/FILE">`` block of the page gets that file of
that package's tarball, less its source-map comment; .dvc/plots/NOTICE.md carries their
licences and the files' SHA-256, which this rewrites too.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / ".dvc/plots/page.html"
NOTICE = ROOT / ".dvc/plots/NOTICE.md"
VERSIONS = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}
BLOCK = re.compile(r'(<script data-bundle="([^"/]+)/([^"]+)">)(.*?)(</script>)', re.DOTALL)
# what must not occur in an inlined script: the end of its block, and DVC's placeholders
# (dvc_render.html.HTML.embed replaces them anywhere in the page)
FORBIDDEN = ("</script", "<!--", "{plot_divs}", "{scripts}", "{refresh_tag}")


def tarballs(folder: Path | None, work: Path) -> dict[str, Path]:
    if folder is None:
        folder = work
        specs = [f"{name}@{version}" for name, version in VERSIONS.items()]
        subprocess.run(["npm", "pack", "--silent", *specs], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL)
    return {name: folder / f"{name}-{version}.tgz" for name, version in VERSIONS.items()}


def member(tarball: Path, name: str) -> str:
    with tarfile.open(tarball) as archive:
        handle = archive.extractfile(f"package/{name}")
        if handle is None:
            raise SystemExit(f"error: {tarball.name}: no package/{name}")
        return handle.read().decode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="folder", type=Path,
                        help="a folder holding the npm pack tarballs (default: npm pack them)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        found = tarballs(args.folder, Path(work))
        page = PAGE.read_text(encoding="utf-8")
        notes, licences = [], []

        def inline(match: re.Match[str]) -> str:
            package, name = match.group(2), match.group(3)
            code = re.sub(r"\n?//# sourceMappingURL=\S+\s*$", "", member(found[package], name))
            bad = [text for text in FORBIDDEN if text in code]
            if bad:
                raise SystemExit(f"error: {package}/{name} contains {bad}: cannot be inlined")
            digest = hashlib.sha256(code.encode("utf-8")).hexdigest()
            notes.append(f"| {package} | {VERSIONS[package]} | {name} | `{digest}` |")
            licences.append(f"## {package} {VERSIONS[package]}\n\n```\n"
                            f"{member(found[package], 'LICENSE').strip()}\n```\n")
            return f"{match.group(1)}{code}{match.group(5)}"

        page = BLOCK.sub(inline, page)
    if len(notes) != len(VERSIONS):
        raise SystemExit(f"error: {PAGE}: expected {len(VERSIONS)} data-bundle blocks")
    PAGE.write_text(page, encoding="utf-8")
    NOTICE.write_text(
        "# Third-party code in page.html\n\n"
        "`page.html` (the page template of `dvc plots show`) inlines these files, unchanged\n"
        "but for their source-map comment, from the packages' npm tarballs\n"
        "(`tools/vega_bundle.py` writes them and this file). SHA-256 of the inlined text:\n\n"
        "| package | version | file | SHA-256 |\n|---|---|---|---|\n" + "\n".join(notes)
        + "\n\nThe minified builds include the packages' own dependencies: the vega-* "
        "modules and vega-themes, vega-tooltip, vega-schema-url-parser (BSD-3-Clause, the "
        "same authors'), d3 modules, delaunator, topojson-client and semver (ISC), "
        "fast-json-patch and json-stringify-pretty-compact (MIT), tslib (0BSD); their "
        "licences are in their own npm packages.\n\n"
        "# Licences\n\n" + "\n".join(licences), encoding="utf-8")
    print(f"{PAGE.relative_to(ROOT)}: {len(page):,} characters; {NOTICE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
