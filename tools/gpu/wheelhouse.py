"""Manifest and dependency checks for the offline wheelhouse (tools/gpu/make_wheelhouse.sh).

    python wheelhouse.py manifest WHEELHOUSE          write WHEELHOUSE/MANIFEST (name version sha256 file)
    python wheelhouse.py verify WHEELHOUSE            check every file against MANIFEST
    python wheelhouse.py closure WHEELHOUSE --python 3.12 --node-packages FILE
                                                      fail when a wheel needs a package that is
                                                      neither in the wheelhouse nor on the node
    PY wheelhouse.py needed WHEELHOUSE                the wheels PY lacks (not installed, or older):
                                                      a node's newer setuptools is not downgraded

Standard library only (plus `packaging` for closure, which pip itself vendors), so it runs on the
GPU node before anything is installed.
"""
import argparse
import email.parser
import hashlib
import re
import sys
import tarfile
import zipfile
from pathlib import Path

MANIFEST = 'MANIFEST'
# A requirement on the first name is met by the second: the GPU node has the headless OpenCV
# (same `cv2` module); mmcv and imaug name the GUI build.
ALIASES = {'opencv-python': 'opencv-python-headless'}


def canonical(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def read_metadata(path):
    """The METADATA (wheel) or PKG-INFO (sdist) of a distribution file, parsed."""
    if path.name.endswith('.whl'):
        with zipfile.ZipFile(path) as zf:
            member = next(n for n in zf.namelist() if n.endswith('.dist-info/METADATA'))
            text = zf.read(member).decode()
    else:
        with tarfile.open(path) as tf:
            member = min((m for m in tf.getnames() if m.endswith('/PKG-INFO')), key=len)
            text = tf.extractfile(member).read().decode()
    return email.parser.Parser().parsestr(text, headersonly=True)


PREBUILT = 'prebuilt'  # prebuilt/KEY/*.whl: onedl-mmcv cross-built for one node (make_wheelhouse.sh)


def distributions(wheelhouse):
    """The wheelhouse's files: its wheels and source archives, and the prebuilt wheels."""
    top = [p for p in Path(wheelhouse).iterdir() if p.name.endswith(('.whl', '.tar.gz'))]
    return sorted(top) + sorted(Path(wheelhouse).glob(f'{PREBUILT}/*/*.whl'))


def relative(wheelhouse, path):
    return path.relative_to(wheelhouse).as_posix()


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(wheelhouse, python):
    lines = []
    for path in distributions(wheelhouse):
        meta = read_metadata(path)
        lines.append(f"{canonical(meta['Name'])} {meta['Version']} {sha256(path)} {relative(wheelhouse, path)}")
    (Path(wheelhouse) / MANIFEST).write_text(
        f'# python {python} (the wheels are for this Python)\n'
        '# name version sha256 file (written by tools/gpu/wheelhouse.py)\n' + '\n'.join(lines) + '\n')
    return lines


def read_manifest(wheelhouse):
    rows = []
    for line in (Path(wheelhouse) / MANIFEST).read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            name, version, digest, filename = line.split()
            rows.append((name, version, digest, filename))
    return rows


def verify(wheelhouse):
    """Problems: files whose sha256 differs from MANIFEST, listed files missing, unlisted files."""
    problems = []
    rows = read_manifest(wheelhouse)
    for name, version, digest, filename in rows:
        path = Path(wheelhouse) / filename
        if not path.is_file():
            problems.append(f'{filename}: listed in MANIFEST but missing')
        elif sha256(path) != digest:
            problems.append(f'{filename}: sha256 differs from MANIFEST (corrupt or replaced)')
    listed = {r[3] for r in rows}
    problems += [f'{relative(wheelhouse, p)}: not in MANIFEST' for p in distributions(wheelhouse)
                 if relative(wheelhouse, p) not in listed]
    return problems


def closure(wheelhouse, python, node_packages):
    """Requirements (name: needed by) that neither the wheelhouse nor the node satisfies."""
    from packaging.requirements import Requirement  # pip vendors it; numpy's node has it too
    env = {'python_version': python, 'python_full_version': python + '.0',
           'sys_platform': 'linux', 'platform_system': 'Linux', 'platform_machine': 'x86_64',
           'os_name': 'posix', 'implementation_name': 'cpython',
           'platform_python_implementation': 'CPython', 'extra': ''}
    have = {canonical(line.split('#')[0].strip())
            for line in Path(node_packages).read_text().splitlines()
            if line.split('#')[0].strip()}
    metas = [read_metadata(p) for p in distributions(wheelhouse)]
    have |= {canonical(m['Name']) for m in metas}
    missing = {}
    for meta in metas:
        for spec in meta.get_all('Requires-Dist') or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate(env):
                continue  # an extra, another platform or another Python
            name = canonical(req.name)
            if name in have or ALIASES.get(name) in have:
                continue
            missing.setdefault(name, []).append(canonical(meta['Name']))
    return missing


def _version_class():
    try:
        from packaging.version import Version
    except ImportError:  # the node's pip always carries it
        from pip._vendor.packaging.version import Version
    return Version


def needed(wheelhouse):
    """The wheels of the wheelhouse this interpreter lacks or has at an older version."""
    from importlib import metadata
    Version = _version_class()
    paths = []
    for name, version, _, filename in read_manifest(wheelhouse):
        if not filename.endswith('.whl') or '/' in filename:
            continue  # source archives, and the prebuilt wheels install_offline.sh chooses from
        try:
            if Version(metadata.version(name)) >= Version(version):
                continue
        except metadata.PackageNotFoundError:
            pass
        paths.append(str(Path(wheelhouse) / filename))
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('command', choices=['manifest', 'verify', 'closure', 'needed'])
    parser.add_argument('wheelhouse')
    parser.add_argument('--python', default='3.12', help='target Python: MANIFEST header, markers (closure)')
    parser.add_argument('--node-packages', help='list of packages the target already has (closure)')
    args = parser.parse_args(argv)
    if args.command == 'manifest':
        for line in write_manifest(args.wheelhouse, args.python):
            name, version, digest, filename = line.split()
            print(f'    {name:28s} {version:12s} {digest[:16]}…  {filename}')
        return 0
    if args.command == 'needed':
        print('\n'.join(needed(args.wheelhouse)))
        return 0
    if args.command == 'verify':
        problems = verify(args.wheelhouse)
        for p in problems:
            print(f'!! {p}', file=sys.stderr)
        return 1 if problems else 0
    if not args.node_packages:
        parser.error('closure needs --node-packages FILE')
    missing = closure(args.wheelhouse, args.python, args.node_packages)
    for name, users in sorted(missing.items()):
        print(f'!! {name} (needed by {", ".join(sorted(set(users)))}) is neither in the wheelhouse '
              f'nor in {args.node_packages}: add it to tools/gpu/wheelhouse.txt', file=sys.stderr)
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main())
