#!/usr/bin/env python3
"""Builds a one-layer OCI image archive (what `ctr images import` reads), byte for byte the same
for the same inputs: file times are 0, owners root, entries sorted.

    oci_image.py OUT.tar REFERENCE [--file SRC=DEST] [--link DEST=TARGET] [--dir DEST]
                 [--entrypoint JSON] [--cmd JSON]

REFERENCE is the image's full name (envboot.local/busybox:1.35); the archive's index.json names it
in the org.opencontainers.image.ref.name annotation. The sandbox builds its images with this: no
registry is reachable, so nothing is ever pulled.
"""
import argparse
import hashlib
import io
import json
import os
import platform
import sys
import tarfile


def entry(name, kind, mode):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def layer(files, links, dirs):
    """The layer: every parent folder, the files and the symbolic links, as one uncompressed tar."""
    members = {}

    def add_parents(path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folder = "/".join(parts[:i])
            if folder and folder not in members:
                members[folder] = (entry(folder, tarfile.DIRTYPE, 0o755), None)

    for folder in dirs:
        folder = folder.strip("/")
        add_parents(folder + "/x")
    for src, dest in files:
        dest = dest.strip("/")
        add_parents(dest)
        with open(src, "rb") as f:
            data = f.read()
        info = entry(dest, tarfile.REGTYPE, 0o755 if os.access(src, os.X_OK) else 0o644)
        info.size = len(data)
        members[dest] = (info, data)
    for dest, target in links:
        dest = dest.strip("/")
        add_parents(dest)
        info = entry(dest, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        members[dest] = (info, None)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(members):
            info, data = members[name]
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("reference")
    parser.add_argument("--file", action="append", default=[], help="SRC=DEST")
    parser.add_argument("--link", action="append", default=[], help="DEST=TARGET")
    parser.add_argument("--dir", action="append", default=[], help="DEST")
    parser.add_argument("--entrypoint", type=json.loads)
    parser.add_argument("--cmd", type=json.loads)
    args = parser.parse_args()

    def pairs(values, flag):
        result = []
        for value in values:
            left, sep, right = value.partition("=")
            if not sep or not left or not right:
                sys.exit(f"oci_image.py: {flag} wants A=B, not {value!r}")
            result.append((left, right))
        return result

    layer_tar = layer(pairs(args.file, "--file"), pairs(args.link, "--link"), args.dir)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    image_config = {"Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]}
    if args.entrypoint is not None:
        image_config["Entrypoint"] = args.entrypoint
    if args.cmd is not None:
        image_config["Cmd"] = args.cmd
    config = json.dumps({
        "architecture": arch,
        "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [blob(layer_tar)]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blob(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": blob(layer_tar), "size": len(layer_tar)}],
    }, sort_keys=True).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": blob(manifest), "size": len(manifest),
                       "platform": {"architecture": arch, "os": "linux"},
                       "annotations": {"org.opencontainers.image.ref.name": args.reference}}],
    }, sort_keys=True).encode()

    archive = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": index,
    }
    for data in (layer_tar, config, manifest):
        archive["blobs/sha256/" + blob(data)[len("sha256:"):]] = data
    tmp = args.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for folder in ("blobs", "blobs/sha256"):
            tar.addfile(entry(folder, tarfile.DIRTYPE, 0o755))
        for name in sorted(archive):
            info = entry(name, tarfile.REGTYPE, 0o644)
            info.size = len(archive[name])
            tar.addfile(info, io.BytesIO(archive[name]))
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
