"""Release notes for an import: region, architecture, image ID and a console launch link.

The architecture comes from the image name's suffix, which the importer derives from the disk
image (:mod:`aliasync.disk._inspect`): no suffix is a BIOS image (x86_64 only), ``-uefi-x86-64``
and ``-uefi-arm64`` are UEFI images for one architecture, ``-uefi-multi`` boots on both.

The link opens the ECS console's instance purchase page in the image's region with the image
preselected: ``https://ecs.console.aliyun.com/server/region/<region>?imageId=<id>#/server/create``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aliasync.pipeline._report import ImportReport

__all__ = ["ReleaseRow", "architecture", "console_link", "dokuwiki", "markdown", "release_rows"]

# Longest first: the first suffix that matches wins.
_ARCHITECTURES = (
    ("-uefi-x86-64", "x86_64"),
    ("-uefi-arm64", "arm64"),
    ("-uefi-multi", "x86_64+arm64"),
    ("-hybrid-x86-64", "x86_64"),
    ("-hybrid-multi", "x86_64+arm64"),
)


@dataclass(frozen=True)
class ReleaseRow:
    region: str
    architecture: str
    name: str
    image_id: str

    @property
    def link(self) -> str:
        return console_link(self.region, self.image_id)


def architecture(name: str) -> str:
    """The architecture an image of this name boots on (see the module doc)."""
    for suffix, arch in _ARCHITECTURES:
        if name.endswith(suffix):
            return arch
    return "x86_64"


def console_link(region: str, image_id: str) -> str:
    return (
        f"https://ecs.console.aliyun.com/server/region/{region}?imageId={image_id}#/server/create"
    )


def release_rows(report: ImportReport) -> list[ReleaseRow]:
    """Every published image, by region then architecture."""
    rows = [
        ReleaseRow(region.region, architecture(image.name), image.name, image.image_id)
        for region in report.regions
        for image in region.images
        if image.ok and image.image_id
    ]
    return sorted(rows, key=lambda r: (r.region, r.architecture, r.name))


def markdown(report: ImportReport) -> str:
    """A Markdown table (GitHub flavour)."""
    lines = [
        f"Images of run `{report.run_id}`:",
        "",
        "| Region | Architecture | Image | Image ID |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.region} | {r.architecture} | {r.name} | [{r.image_id}]({r.link}) |"
        for r in release_rows(report)
    ]
    return "\n".join(lines) + "\n"


def dokuwiki(report: ImportReport) -> str:
    """A DokuWiki table."""
    lines = [
        f"Images of run ''{report.run_id}'':",
        "",
        "^ Region ^ Architecture ^ Image ^ Image ID ^",
    ]
    lines += [
        f"| {r.region} | {r.architecture} | {r.name} | [[{r.link}|{r.image_id}]] |"
        for r in release_rows(report)
    ]
    return "\n".join(lines) + "\n"
